"""``python -m ctpatch.report.plan``."""

import sys

from ctpatch.report.plan.cli import main

sys.exit(main())
