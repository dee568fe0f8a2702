"""A session fixture of one small LUNA16 demo run with its report, shared by the report and README tests."""

from __future__ import annotations

import pytest
from snakerun import SMALL_LUNA, snakemake, write_config


@pytest.fixture(scope="session")
def small_luna_run(tmp_path_factory):
    """``snakemake --cores 2`` then ``--report report.html`` on the small demo (SMALL_LUNA): the working folder."""
    work = tmp_path_factory.mktemp("small_luna_run")
    write_config(work, SMALL_LUNA)
    snakemake(work, "--cores", "2")
    snakemake(work, "--report", "report.html")
    return work
