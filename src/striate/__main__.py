"""`python -m striate ...`: the same as the `striate` command."""

import sys

from .cli import main

sys.exit(main())
