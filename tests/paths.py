"""Where the tests find the repository and the real data beside it: the one definition every test uses."""

from __future__ import annotations

import os
from pathlib import Path

#: the repository (the folder holding the Snakefile)
REPO = Path(__file__).resolve().parents[1]
#: the real data beside the repository (not shipped with it): LDCT patients, and their long-name copies;
#: ``CTPATCH_SHARED_DATA`` points the tests elsewhere (an empty folder: the suite as on a clone without it)
SHARED_DATA = Path(os.environ.get("CTPATCH_SHARED_DATA") or REPO.parent / "shared" / "data")
#: the real LDCT patients (L096, L143, L192, L286), four slice pairs each
SHARED_LDCT = SHARED_DATA / "ldct"
