"""The real data beside the repository, as a fixture that skips when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from paths import SHARED_DATA


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "ldct").is_dir():
        pytest.skip(f"real CT data not found at {SHARED_DATA}")
    return SHARED_DATA
