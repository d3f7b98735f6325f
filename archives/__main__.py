"""`python -m archives`: see archives/cli.py."""

import sys

from archives.cli import main

sys.exit(main())
