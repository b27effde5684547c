"""``python -m kvopt``: the same command as ``kvopt``."""

import sys

from kvopt.cli import main

sys.exit(main())
