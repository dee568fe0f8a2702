"""A changed setting reaches exactly the steps it changes the bytes of, whatever the rerun triggers.

The settings files are written when the workflow is parsed, and only when their text changed: their
time stamps carry a changed key to every step that reads it, with Snakemake's default triggers, with
``--rerun-triggers mtime``, and from a second checkout on the same results (no .snakemake metadata).
Settings that cannot change a byte (the machine's: extract.tasks, mpi, buffer_patches; the policies
luna16.unknown_series and plausibility; demo.* when the data are real) rerun no step of the data,
only the plan and the report's config, which describe the whole config.

Each case runs ``snakemake -n`` on a copy of one finished tiny run (time stamps kept) and compares the
jobs it would run, by rule and count, with what the case expects.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from demos import TINY_DEMO, TINY_SEED
from snakerun import snakemake, write_config

from ctpatch.luna16.demo import write_dataset

pytestmark = pytest.mark.slow

#: what describes the whole config: reruns for any key
REPORTS = {"plan": 1, "report_config": 1}
#: everything after the extraction of the two subsets
AFTER_EXTRACTION = {
    "extract_patches": 2,
    "verify_patches": 2,
    "sanity_pictures": 2,
    "nodule_pictures": 2,
    "nodule_accounting": 1,
    "verification_table": 1,
}


def planned_jobs(workdir: Path, *args: str) -> dict[str, int]:
    """rule -> count of the jobs ``snakemake -n`` would run (``all`` left out)."""
    out = snakemake(workdir, "-n", "--cores", "2", *args).stdout
    table = out.split("Job stats:", 1)[1].split("Reasons:", 1)[0] if "Job stats:" in out else ""
    jobs = {m[0]: int(m[1]) for m in re.findall(r"^(\w+)\s+(\d+)$", table, re.M)}
    jobs.pop("all", None)
    jobs.pop("total", None)
    return jobs


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished tiny LUNA16 run on real (not demo) data: its working folder."""
    base = tmp_path_factory.mktemp("reruns")
    root = base / "LUNA16"
    write_dataset(root, TINY_DEMO, TINY_SEED)
    work = base / "work"
    write_config(work, {"mode": "luna16", "luna16": {"root": str(root)}, "extract": {"tasks": 2}})
    snakemake(work, "--cores", "2")
    assert planned_jobs(work) == {}, "the finished run has jobs left"
    return work


def changed(finished: Path, tmp_path: Path, over: dict, keep_metadata: bool = True) -> Path:
    """A copy of the finished run (time stamps kept) whose config has ``over`` merged in."""
    work = tmp_path / "work"
    shutil.copytree(finished, work, symlinks=True, copy_function=shutil.copy2)
    if not keep_metadata:  # as a second checkout on the same results would be
        shutil.rmtree(work / ".snakemake")
    path = work / "config" / "config.yaml"
    config = yaml.safe_load(path.read_text())
    for key, value in over.items():
        section, _, rest = key.partition(".")
        node = config.setdefault(section, {}) if rest else config
        parts = rest.split(".") if rest else [section]
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    path.write_text(yaml.safe_dump(config))
    return work


@pytest.mark.parametrize(
    "key, value",
    [
        ("extract.tasks", 1),
        ("extract.mpi", "mpiexec -v"),
        ("extract.buffer_patches", 3),
        ("extract.nodes", 2),
        ("luna16.unknown_series", "warn"),
        ("luna16.plausibility.min_air_share", 0.02),
        ("demo.noise_hu", 25.0),  # demo.* of a run on real data
        ("demo.subsets", 3),
    ],
)
def test_settings_that_cannot_change_a_byte_rerun_no_step_of_the_data(finished, tmp_path, key, value):
    work = changed(finished, tmp_path, {key: value})
    assert planned_jobs(work) == REPORTS


@pytest.mark.parametrize("triggers", [(), ("--rerun-triggers", "mtime")])
def test_a_changed_negatives_ratio_reruns_its_steps_and_only_them(finished, tmp_path, triggers):
    work = changed(finished, tmp_path, {"luna16.negatives.ratio": 2})
    assert planned_jobs(work, *triggers) == {**AFTER_EXTRACTION, **REPORTS}


def test_a_dry_run_after_a_changed_setting_names_the_settings_file_not_its_text(finished, tmp_path):
    """Issue 22: one changed setting made the dry run print 35 KB of settings JSON."""
    work = changed(finished, tmp_path, {"luna16.negatives.ratio": 2})
    proc = snakemake(work, "-n", "--cores", "2")
    out = proc.stdout + proc.stderr
    assert "reason: Updated input files: results/luna16/settings/patches.json" in out
    assert "ctpatch-settings" not in out and '"ratio"' not in out and "'ratio'" not in out
    assert len(out) < 16_000, len(out)  # the two subsets' jobs, their reasons and the command lines


def test_a_changed_ratio_reaches_the_files_from_a_second_checkout(finished, tmp_path):
    """No .snakemake metadata (another clone on the same results): the settings file's time stamp alone."""
    work = changed(finished, tmp_path, {"luna16.negatives.ratio": 2}, keep_metadata=False)
    jobs = planned_jobs(work)
    assert {k: jobs.get(k) for k in AFTER_EXTRACTION} == AFTER_EXTRACTION


def test_a_changed_window_reruns_the_conversion_and_everything_after(finished, tmp_path):
    work = changed(finished, tmp_path, {"luna16.normalize.center": 0.3})
    assert planned_jobs(work) == {"convert_mhd": 2, "make_labels": 2, **AFTER_EXTRACTION, **REPORTS}
