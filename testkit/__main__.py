"""`python -m testkit`: see testkit/cli.py."""

import os
import sys

from testkit.cli import main

sys.stdout.flush()
code = main()
sys.stdout.flush()
sys.stderr.flush()
os._exit(code)  # the SDK's runtime can abort at interpreter exit (sdk-python#300)
