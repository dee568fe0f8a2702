"""Fixtures shared by the reader, explain and plan tests: small real patch files per module."""

from __future__ import annotations

import pytest
from _patchfiles import ldct_run, luna_run
from paths import SHARED_LDCT


@pytest.fixture(scope="module")
def luna(tmp_path_factory):
    """A LUNA16 demo run (package steps chained as the rules chain them)."""
    return luna_run(tmp_path_factory)


@pytest.fixture(scope="module")
def luna_crops(tmp_path_factory):
    """The same LUNA16 demo run written with ``output.layout: crops``."""
    return luna_run(tmp_path_factory, "crops")


@pytest.fixture(scope="module")
def luna_volumes(tmp_path_factory):
    """The same LUNA16 demo run written with ``output.layout: volumes``."""
    return luna_run(tmp_path_factory, "volumes")


@pytest.fixture(scope="module")
def ldct(tmp_path_factory):
    """An LDCT run on the real pairs in ../shared/data."""
    if not SHARED_LDCT.is_dir():
        pytest.skip(f"real LDCT data not found under {SHARED_LDCT}")
    return ldct_run(tmp_path_factory)
