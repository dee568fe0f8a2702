"""The suite on a clone without the real CT data (issue 22: two README tests failed there while the other
LDCT tests skipped): the tests that need the data skip, naming where they looked; nothing fails.

The tests of the modules that use the data run in a child pytest with ``CTPATCH_SHARED_DATA`` (tests/paths.py)
pointed at an empty folder, as on a machine that has only the clone.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from paths import REPO

#: the modules that read the real data, and the README tests that failed without it
NEEDS_DATA = [
    "tests/unit/test_extract_ldct.py",
    "tests/unit/test_verify_ldct.py",
    "tests/unit/test_pair_ldct.py",
    "tests/unit/test_dicom.py",
    "tests/faults/test_dicom_folders.py",
    "tests/faults/test_patient_files.py",
    "tests/workflow/test_ldct_workflow.py",
    "tests/unit/test_torch_readers.py::test_the_default_layout_is_read_from_an_ldct_file",
    "tests/unit/test_verify_file.py::test_ldct_parts_are_checked_together_and_alone",
    "tests/workflow/test_readme.py::test_rule_table_matches_snakemake_list_rules",
    "tests/workflow/test_readme.py::test_rule_graphs_hold_the_rules_and_edges_of_the_workflow",
]


def test_without_the_real_data_the_suite_skips_what_needs_it_and_fails_nothing(tmp_path):
    empty = tmp_path / "no-shared-data"
    empty.mkdir()
    env = {
        **os.environ,
        "CTPATCH_SHARED_DATA": str(empty),
        "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", "-m", "not slurm", *NEEDS_DATA],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-5000:]
    summary = out.strip().splitlines()[-1]
    counts = {k: int(n) for n, k in re.findall(r"(\d+) (passed|skipped|failed|errors?)", summary)}
    assert counts.get("failed", 0) == 0 and counts.get("error", 0) == counts.get("errors", 0) == 0, summary
    assert counts.get("skipped", 0) >= 50, summary  # every test of the data, one by one or by module
    assert counts.get("passed", 0) >= 3, summary  # the README's rule table and both rule graphs need no data
    reasons = [ln for ln in out.splitlines() if ln.startswith("SKIPPED")]
    assert reasons and all(str(empty) in ln for ln in reasons), reasons  # each says where it looked
