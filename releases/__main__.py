"""`python -m releases`: see releases/cli.py."""

from config.cli import exit_now
from releases.cli import main

exit_now(main())
