"""`python -m devstack`: the dev loop (devstack/dev.py); `python -m devstack.demo` is the demo."""

import sys

from devstack.dev import main

sys.exit(main())
