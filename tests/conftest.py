"""Shared test helpers: paths of the repository and of the real data beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "ldct").is_dir():
        pytest.skip(f"real CT data not found at {SHARED_DATA}")
    return SHARED_DATA
