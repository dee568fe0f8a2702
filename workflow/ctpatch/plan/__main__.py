"""``python -m ctpatch.plan``."""

import sys

from ctpatch.plan.cli import main

sys.exit(main())
