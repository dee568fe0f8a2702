"""Fault catalog, the few cases that need Snakemake itself: parsing (dry runs, seconds) and a handful
of runs (marked slow): the interpreter of the rules, a concurrent run, ``tasks=0``, an LDCT pairing
failure reported once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from demos import TINY_DEMO, TINY_SEED
from paths import REPO, SHARED_LDCT

from ctpatch.luna16.demo import write_dataset

from .conftest import FULL, QUARTER, first_scan

SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile")]


def workdir_with(tmp_path: Path, config: dict) -> Path:
    work = tmp_path / "work"
    (work / "config").mkdir(parents=True)
    (work / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return work


def snakemake(work: Path, *args, env=None, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SNAKEMAKE, "--directory", str(work), *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def test_extra_subset_folder_is_a_warning_at_parse(tmp_path):
    root = tmp_path / "LUNA16"
    write_dataset(root, TINY_DEMO, seed=TINY_SEED)
    shutil.copytree(root / "subset0", root / "subset0_old")
    work = workdir_with(tmp_path, {"mode": "luna16", "luna16": {"root": str(root)}})
    proc = snakemake(work, "-n", "--cores", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    warning = next(ln for ln in proc.stderr.splitlines() if ln.startswith("warning:"))
    assert "subset0_old" in warning and "Traceback" not in proc.stderr
    assert "subset0_old" not in proc.stdout  # no job for it


def test_zraw_scan_is_an_input_of_its_rules(tmp_path):
    """Not a refusal: the rules take the data file from the header (.zraw), not `<uid>.raw`."""
    import SimpleITK as sitk

    root = tmp_path / "LUNA16"
    write_dataset(root, TINY_DEMO, seed=TINY_SEED)
    mhd = first_scan(root)
    image = sitk.ReadImage(str(mhd))
    mhd.with_suffix(".raw").unlink()
    sitk.WriteImage(image, str(mhd), useCompression=True)
    work = workdir_with(tmp_path, {"mode": "luna16", "luna16": {"root": str(root)}})
    proc = snakemake(work, "-n", "-p", "--cores", "1")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert mhd.with_suffix(".zraw").name in proc.stdout


def test_scan_name_that_is_no_series_uid_refused_at_parse(tmp_path):
    root = tmp_path / "LUNA16"
    write_dataset(root, TINY_DEMO, seed=TINY_SEED)
    mhd = first_scan(root)
    hostile = mhd.with_name("1.2.3; touch PWNED.mhd")
    mhd.rename(hostile)
    work = workdir_with(tmp_path, {"mode": "luna16", "luna16": {"root": str(root)}})
    proc = snakemake(work, "-n", "--cores", "1")
    first = proc.stderr.splitlines()[0]
    assert proc.returncode != 0 and first.startswith("error: luna16.root") and "1.2.3; touch PWNED.mhd" in first
    assert "Traceback" not in proc.stderr and not list(tmp_path.rglob("PWNED*"))


def test_scan_in_two_subsets_refused_at_parse(tmp_path):
    """One scan in two subsets would leak between folds: refused when the workflow is parsed, naming both files."""
    root = tmp_path / "LUNA16"
    write_dataset(root, TINY_DEMO, seed=TINY_SEED)
    mhd = first_scan(root)
    for f in (mhd, mhd.with_suffix(".raw")):
        (root / "subset1" / f.name).write_bytes(f.read_bytes())
    work = workdir_with(tmp_path, {"mode": "luna16", "luna16": {"root": str(root)}})
    proc = snakemake(work, "-n", "--cores", "1")
    first = proc.stderr.splitlines()[0]
    assert proc.returncode != 0 and first.startswith("error: luna16.root") and "two subsets" in first
    assert str(root / "subset0" / mhd.name) in first and str(root / "subset1" / mhd.name) in first


def test_patient_folder_with_hostile_name_refused_at_parse(tmp_path):
    root = tmp_path / "ldct"
    (root / "L0 $(touch PWNED)" / QUARTER).mkdir(parents=True)
    (root / "L001" / QUARTER).mkdir(parents=True)
    work = workdir_with(tmp_path, {"mode": "ldct", "ldct": {"root": str(root)}})
    proc = snakemake(work, "-n", "--cores", "1")
    first = proc.stderr.splitlines()[0]
    assert proc.returncode != 0 and first.startswith("error: ldct.root") and "L0 $(touch PWNED)" in first
    assert "Traceback" not in proc.stderr and not list(tmp_path.rglob("PWNED*"))


def test_patient_folder_named_like_an_option_refused_at_parse(tmp_path):
    """A patient folder named --help must not reach a command line as an option: refused naming it."""
    root = tmp_path / "ldct"
    (root / "--help" / QUARTER).mkdir(parents=True)
    (root / "L001" / QUARTER).mkdir(parents=True)
    work = workdir_with(tmp_path, {"mode": "ldct", "ldct": {"root": str(root)}})
    proc = snakemake(work, "-n", "--cores", "1")
    first = proc.stderr.splitlines()[0]
    assert proc.returncode != 0 and first.startswith("error: ldct.root") and "--help" in first, proc.stderr


def test_bad_config_value_refused_at_parse_in_one_line(tmp_path):
    work = workdir_with(tmp_path, {"mode": "luna16", "luna16": {"patch": {"size": 67}}})
    proc = snakemake(work, "-n", "--cores", "1")
    assert proc.returncode != 0 and proc.stderr.startswith("error: ") and "luna16.patch.size" in proc.stderr
    assert "Traceback" not in proc.stderr and 'File "' not in proc.stderr


def test_ldct_keys_without_mode_ldct_refused_at_parse(tmp_path):
    """Issue 22: a config with ldct keys and no mode: ldct ran the LUNA16 demo without a word."""
    work = workdir_with(tmp_path, {"mode": "luna16"})
    (work / "my.yaml").write_text(yaml.safe_dump({"ldct": {"root": str(tmp_path / "ldct")}}))
    proc = snakemake(
        work, "-n", "--cores", "1", "--configfile", str(work / "config" / "config.yaml"), str(work / "my.yaml")
    )
    assert proc.returncode == 1 and proc.stderr.startswith("error: ldct.root is set but mode is 'luna16'"), proc.stderr
    assert "set mode: ldct" in proc.stderr and "Traceback" not in proc.stderr
    assert "make_demo_luna16" not in proc.stdout  # nothing planned


@pytest.mark.slow
def test_rules_call_the_interpreter_running_snakemake(tmp_path):
    """Without the venv on PATH (its `snakemake` run by full path) the rules still find the package's
    dependencies: they call "$CTPATCH_PYTHON", which the Snakefile's shell prefix sets to sys.executable,
    not whatever `python` PATH finds first."""
    work = workdir_with(tmp_path, {"mode": "luna16", "demo": TINY_DEMO})
    proc = snakemake(work, "-n", "-p", "--cores", "1")
    assert '"$CTPATCH_PYTHON" -m ctpatch.luna16.demo' in proc.stdout
    assert " python -m ctpatch" not in proc.stdout
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}  # no pyenv, no venv bin
    proc = snakemake(work, "--cores", "1", "results/luna16/checks/inputs.json", env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "ModuleNotFoundError" not in proc.stderr


@pytest.mark.slow
def test_concurrent_run_on_one_results_folder_refused(tmp_path):
    work = workdir_with(tmp_path, {"mode": "luna16", "demo": {**TINY_DEMO, "size_xy": 256, "slices": [150, 160]}})
    first = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(work), "--cores", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        locks = work / ".snakemake" / "locks"
        deadline = time.time() + 60
        while not (locks.is_dir() and any(locks.iterdir())) and time.time() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the first run ended before the second started"
        second = snakemake(work, "--cores", "1")
        assert second.returncode != 0
        # Snakemake refuses either by its lock or, when the first run's jobs are under way, by their
        # incomplete outputs: both leave the first run's files alone
        said = second.stderr
        assert any(w in said for w in ("LockException", "cannot be locked", "Incomplete files")), said[-2000:]
        assert "Traceback" not in second.stderr
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=60)


@pytest.mark.slow
def test_tasks_zero_named_as_such(tmp_path):
    work = workdir_with(tmp_path, {"mode": "luna16", "demo": TINY_DEMO, "extract": {"tasks": 1}})
    proc = snakemake(
        work, "results/luna16/patches/subset0.h5", "--cores", "2", "--set-resources", "extract_patches:tasks=0"
    )
    assert proc.returncode != 0
    line = next(ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.startswith("error:"))
    assert "resources.tasks must be a whole number >= 1" in line and "got 0" in line
    assert not (work / "results" / "luna16" / "patches" / "subset0.h5").exists()


@pytest.mark.slow
def test_ldct_pairing_failure_reported_once(tmp_path):
    if not (SHARED_LDCT / "L143").is_dir():
        pytest.skip("real LDCT data not found")
    root = tmp_path / "ldct"
    victims = []
    for patient in ("L096", "L143"):  # one pairing job over all patients reports every bad one
        shutil.copytree(SHARED_LDCT / patient, root / patient)
        victims.append(sorted((root / patient / FULL).glob("*.IMA"))[0])
        with victims[-1].open("r+b") as fh:
            fh.truncate(victims[-1].stat().st_size - 1000)
    work = workdir_with(tmp_path, {"mode": "ldct", "ldct": {"root": str(root)}, "extract": {"tasks": 1}})
    proc = snakemake(work, "--cores", "2")
    assert proc.returncode != 0
    assert "Error in rule pair_slices" in proc.stderr and "Error in rule plan" not in proc.stderr
    lines = (work / "logs" / "results" / "ldct" / "pair_slices.log").read_text().splitlines()
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 2, lines
    for line, victim in zip(errors, victims):
        assert victim.name in line and victim.parent.parent.name in line and "pixel data truncated" in line
    assert not list((work / "results" / "ldct" / "pairs").glob("*.tsv"))


@pytest.mark.slow
def test_second_run_from_another_folder_on_one_results_folder_refused(tmp_path):
    """Two runs from different working directories writing one results folder: Snakemake's lock is per
    working directory, ctpatch's is on the results folder; the second stops at once naming the first."""
    results = tmp_path / "shared_results"
    config = {"mode": "luna16", "results": str(results), "demo": {**TINY_DEMO, "size_xy": 256, "slices": [150, 160]}}
    a = workdir_with(tmp_path / "a", config)
    b = workdir_with(tmp_path / "b", config)
    first = subprocess.Popen(
        [*SNAKEMAKE, "--directory", str(a), "--cores", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        lock = results / ".ctpatch.lock"
        deadline = time.time() + 60
        while not (lock.is_file() and lock.read_text().strip()) and time.time() < deadline:
            time.sleep(0.2)
        assert first.poll() is None, "the first run ended before the second started"
        before = {p: p.stat().st_mtime_ns for p in results.rglob("*") if p.is_file()}
        second = snakemake(b, "--cores", "1")
        assert second.returncode != 0
        line = next(ln for ln in second.stderr.splitlines() if ln.startswith("error:"))
        assert str(results) in line and "in use by another ctpatch run" in line and f"process {first.pid}" in line
        assert "Traceback" not in second.stderr
        assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p.exists())  # nothing of the first touched
    finally:
        os.killpg(first.pid, signal.SIGTERM)
        first.wait(timeout=60)
    again = snakemake(b, "-n", "--cores", "1")  # the lock goes with the process that held it
    assert again.returncode == 0, again.stderr[-2000:]
