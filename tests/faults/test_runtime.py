"""Fault catalog: kills at each stage, the MPI launcher, a full disk, a read-only results folder.

Kills: the step runs in a subprocess whose ``os.replace`` (the rename that publishes every output,
:func:`ctpatch.store.atomic.atomic_path`) SIGKILLs the process instead: the worst moment, everything
written but not yet published.  Nothing finished-looking may be left.  Disks: a tmpfs mounted
for the test (root only; skipped otherwise), full or read-only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from paths import REPO

from ctpatch.ldct import pairing as pair_ldct
from ctpatch.luna16 import check as check_luna
from ctpatch.luna16 import convert
from ctpatch.luna16 import labels as make_labels
from ctpatch.settings import defaults

from .conftest import (
    assert_refused,
    call,
    check_args,
    first_scan,
    pairs_args,
    preflight_args,
    run_module,
    settings_file,
    tree_digest,
)

KILL_AT_PUBLISH = (
    "import os, runpy, signal, sys\n"
    "os.replace = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)\n"
)


def killed_at_publish(module: str, *argv) -> int:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT_PUBLISH, f"ctpatch.{module}", *map(str, argv)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return proc.returncode


def finished(folder: Path) -> list[Path]:
    """Files under ``folder`` that look finished (not a hidden temp name)."""
    return [p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")] if folder.exists() else []


def _sidecars(luna, out):
    """Convert subset0's scans (in-process) for the stages after the conversion."""
    from ctpatch.store.atomic import save_npy, write_json

    paths = []
    for mhd in sorted((luna / "subset0").glob("*.mhd")):
        volume, sidecar = convert.convert(mhd, defaults("convert"))
        save_npy(out / f"{mhd.stem}.npy", volume)
        write_json(out / f"{mhd.stem}.json", sidecar)
        paths.append(out / f"{mhd.stem}.json")
    return paths


# ---------------------------------------------------------------- kills at each stage
def test_kill_during_preflight_check(luna, tmp_path):
    out = tmp_path / "checks"
    before = tree_digest(luna)
    rc = killed_at_publish(
        "luna16.check",
        *check_args(luna, tmp_path),
        "--subsets",
        "subset0",
        "--scans-out",
        out / "scans.tsv",
        "--report-out",
        out / "inputs.json",
    )
    assert rc == -signal.SIGKILL and finished(out) == [] and tree_digest(luna) == before


def test_kill_during_conversion(luna, tmp_path):
    out = tmp_path / "volumes"
    before = tree_digest(luna)
    rc = killed_at_publish(
        "luna16.convert", "--scan", first_scan(luna), "--npy-out", out / "a.npy", "--json-out", out / "a.json"
    )
    assert rc == -signal.SIGKILL and finished(out) == [] and tree_digest(luna) == before


def test_kill_during_labels(luna, tmp_path):
    sidecars = _sidecars(luna, tmp_path / "volumes")
    out = tmp_path / "labels"
    rc = killed_at_publish(
        "luna16.labels",
        "--subset",
        "subset0",
        "--sidecars",
        *sidecars,
        "--annotations",
        luna / "CSVFILES" / "annotations.csv",
        "--masks-dir",
        out / "masks",
        "--table-out",
        out / "nodules.tsv",
    )
    assert rc == -signal.SIGKILL and finished(out) == []


def test_kill_during_pairing(ldct, tmp_path):
    out = tmp_path / "pairs"
    before = tree_digest(ldct)
    rc = killed_at_publish(
        "ldct.pairing", *pairs_args(ldct, tmp_path), "--table-out", out / "L096.tsv", "--report-out", out / "L096.json"
    )
    assert rc == -signal.SIGKILL and finished(out) == [] and tree_digest(ldct) == before


def _ldct_extract_args(ldct, tmp_path):
    table = tmp_path / "pairs" / "L096.tsv"
    assert (
        pair_ldct.main(
            [str(a) for a in pairs_args(ldct, tmp_path, random_n=1)]
            + ["--table-out", str(table), "--report-out", str(table.with_suffix(".json"))]
        )
        == 0
    )
    patches = settings_file(tmp_path, "patches", {"mode": "ldct", "ldct": {"root": str(ldct.parent)}})
    return [
        "--ranks",
        "1",
        "--buffer-patches",
        "8",
        "--settings-file",
        patches,
        "--pairs",
        str(table),
    ]


def test_kill_during_extraction_leaves_nothing_finished(ldct, tmp_path):
    """Killed when the patch file is complete but not yet renamed: only the hidden temp file is left
    (the next extraction of the group removes it: tests/unit/test_patchfile.py)."""
    out = tmp_path / "patches"
    rc = killed_at_publish("ldct.extract", *_ldct_extract_args(ldct, tmp_path), "--out", out / "L096.h5")
    assert rc == -signal.SIGKILL and finished(out) == [] and list(out.glob(".L096.h5.*.tmp"))


@pytest.fixture
def ldct_patches(ldct, tmp_path):
    """An LDCT extraction of one pair (one rank, no launcher): (patch file, patches settings, pair table)."""
    args = _ldct_extract_args(ldct, tmp_path)
    patches = tmp_path / "patches" / "L096.h5"
    rc, err = run_module("ldct.extract", *args, "--out", patches)
    assert rc == 0 and patches.is_file(), err
    return patches, args[args.index("--settings-file") + 1], tmp_path / "pairs" / "L096.tsv"


def test_kill_during_verification(ldct_patches, tmp_path):
    patches, settings, pairs = ldct_patches
    before = tree_digest(patches.parent)
    out = tmp_path / "reports"
    rc = killed_at_publish(
        "ldct.verify",
        "--patches",
        patches,
        "--pairs",
        pairs,
        "--settings-file",
        settings,
        "--report-out",
        out / "L096.verify.json",
    )
    assert rc == -signal.SIGKILL and finished(out) == [] and tree_digest(patches.parent) == before


def test_concurrent_conversions_of_one_scan_publish_one_whole_file(luna, tmp_path):
    """Two runs writing the same outputs at once: each writes its own temp name, the renames are
    atomic, so the result is one whole file equal to a conversion on its own."""
    import numpy as np

    out = tmp_path / "volumes"
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow")}
    argv = [
        sys.executable,
        "-m",
        "ctpatch.luna16.convert",
        "--scan",
        str(first_scan(luna)),
        "--npy-out",
        str(out / "a.npy"),
        "--json-out",
        str(out / "a.json"),
    ]
    procs = [subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    alone, _ = convert.convert(first_scan(luna), defaults("convert"))
    np.testing.assert_array_equal(np.load(out / "a.npy"), alone)
    assert sorted(p.name for p in out.iterdir()) == ["a.json", "a.npy"]  # no temp left behind


# ---------------------------------------------------------------- the MPI launcher
def test_world_smaller_than_asked_refused_before_any_output(ldct, tmp_path):
    """A launcher that starts one-rank worlds (plain srun) is named, before any file is written."""
    out = tmp_path / "patches" / "L096.h5"
    args = _ldct_extract_args(ldct, tmp_path)
    args[args.index("--ranks") + 1] = "2"
    rc, err = run_module("ldct.extract", *args, "--out", out)
    assert_refused(rc, err, ["expected an MPI world of 2 ranks, got 1", "--mpi=pmi2"], absent=[out])


@pytest.mark.parametrize("ranks", ["0", "-2"])
def test_ranks_below_one_refused(ldct, tmp_path, ranks):
    out = tmp_path / "patches" / "L096.h5"
    args = _ldct_extract_args(ldct, tmp_path)
    args[args.index("--ranks") + 1] = ranks
    rc, err = run_module("ldct.extract", *args, "--out", out)
    assert rc == 2 and "--ranks >= 1" in err and "Traceback" not in err and not out.exists()


# ---------------------------------------------------------------- disks: full, read-only
@pytest.fixture
def disk(tmp_path):
    """Mount a 1 MiB tmpfs (root only); yields its folder; unmounted afterwards."""
    folder = tmp_path / "disk"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, leave: int = 8192) -> None:
    free = os.statvfs(folder).f_bavail * os.statvfs(folder).f_frsize
    (folder / "filler").write_bytes(b"\0" * max(0, free - leave))


def _read_only(folder: Path) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)


def test_full_disk_during_conversion(luna, disk, capsys):
    _fill(disk)
    before = tree_digest(luna)
    out = disk / "volumes"
    rc, err = call(
        convert.main, ["--scan", first_scan(luna), "--npy-out", out / "a.npy", "--json-out", out / "a.json"], capsys
    )
    assert_refused(rc, err, ["a.npy", "cannot write", "bytes free on its disk"], inputs=(luna, before))
    assert finished(out) == []


def test_full_disk_during_preflight_check(luna, disk, capsys):
    _fill(disk, leave=0)
    out = disk / "checks"
    rc, err = call(
        check_luna.main,
        [
            *preflight_args(luna, luna.parent, out),
        ],
        capsys,
    )
    assert_refused(rc, err, ["scans.tsv", "No space left on device"])
    assert finished(out) == []


def test_free_space_checked_before_extraction(ldct, disk, tmp_path):
    """The estimate from the first block (its stored bytes per patch times the patches to come, plus the
    metadata's margin: one copy, the patch file is written once) must fit, or nothing is written."""
    out = disk / "patches" / "L096.h5"
    rc, err = run_module("ldct.extract", *_ldct_extract_args(ldct, tmp_path), "--group", "L096", "--out", out)
    assert_refused(rc, err, [str(disk / "patches"), "needs about", "free"], absent=[out])
    assert not list((disk / "patches").glob(".L096.h5.*")), "a temporary file was left"


@pytest.mark.parametrize("step", ["convert", "check_luna", "make_labels", "pair_ldct"])
def test_read_only_results_folder(step, luna, ldct, disk, tmp_path, capsys):
    sidecars = _sidecars(luna, tmp_path / "volumes") if step == "make_labels" else []
    _read_only(disk)
    out = disk / "results"
    argv = {
        "convert": (
            convert.main,
            ["--scan", first_scan(luna), "--npy-out", out / "a.npy", "--json-out", out / "a.json"],
        ),
        "check_luna": (
            check_luna.main,
            [
                *check_args(luna, tmp_path),
                "--subsets",
                "subset0",
                "--scans-out",
                out / "scans.tsv",
                "--report-out",
                out / "inputs.json",
            ],
        ),
        "make_labels": (
            make_labels.main,
            [
                "--subset",
                "subset0",
                "--sidecars",
                *sidecars,
                "--annotations",
                luna / "CSVFILES" / "annotations.csv",
                "--masks-dir",
                out / "masks",
                "--table-out",
                out / "nodules.tsv",
            ],
        ),
        "pair_ldct": (
            pair_ldct.main,
            [*pairs_args(ldct, tmp_path), "--table-out", out / "p.tsv", "--report-out", out / "p.json"],
        ),
    }[step]
    rc, err = call(*argv, capsys)
    assert_refused(rc, err, [str(out), "Read-only file system"], absent=[out])
