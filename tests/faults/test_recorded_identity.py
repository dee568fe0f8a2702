"""Fault catalog: patch files that do not match the run they are checked in.

Every patch file records the digest of the settings and the identity of the inputs that made it
(ctpatch.store.identity); verification compares them with the current run's and refuses a file made
with other settings (another negatives ratio, another output.shuffle) or from other inputs (another
subset's file), naming the first setting or input that differs.  A flipped byte in a provenance table
fails verification and every read, instead of reading as a wrong number.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
from demos import TINY_DEMO

from ctpatch.ldct import verify as ldct_verify
from ctpatch.luna16 import verify as luna_verify

from .conftest import assert_refused, call, settings_file, tree_digest
from .test_snakemake_faults import snakemake, workdir_with

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def luna_run(tmp_path_factory) -> Path:
    """A tiny LUNA16 workflow run (two subsets of one scan): its working folder."""
    work = workdir_with(tmp_path_factory.mktemp("identity"), {"mode": "luna16", "demo": TINY_DEMO})
    proc = snakemake(work, "--cores", "2", "results/luna16/patches/subset0.h5", "results/luna16/patches/subset1.h5")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


def _verify_args(work: Path, subset: str, patches: Path, settings: Path, out: Path) -> list:
    res = work / "results" / "luna16"
    return [
        "--settings-file",
        settings,
        "--patches",
        patches,
        "--nodules",
        res / "labels" / subset / "nodules.tsv",
        "--sidecars",
        *sorted((res / "volumes" / subset).glob("*.json")),
        "--masks-dir",
        res / "labels" / subset / "masks",
        "--report-out",
        out,
    ]


def test_the_run_s_own_file_verifies(luna_run, tmp_path, capsys):
    res = luna_run / "results" / "luna16"
    args = _verify_args(
        luna_run, "subset0", res / "patches" / "subset0.h5", res / "settings" / "patches.json", tmp_path / "r.json"
    )
    rc, err = call(luna_verify.main, args, capsys)
    assert rc == 0, err


def test_file_of_another_negatives_ratio_refused(luna_run, tmp_path, capsys):
    """The run's settings say ratio 2; the file was made with ratio 3: refused naming the key."""
    res = luna_run / "results" / "luna16"
    settings = settings_file(tmp_path, "patches", {"luna16": {"negatives": {"ratio": 2}}, "seed": 0})
    out = tmp_path / "r.json"
    before = tree_digest(res / "patches")
    rc, err = call(
        luna_verify.main, _verify_args(luna_run, "subset0", res / "patches" / "subset0.h5", settings, out), capsys
    )
    assert_refused(rc, err, ["subset0.h5", "negatives.ratio", "recorded 3", "now 2"], inputs=(res / "patches", before))
    assert not json.loads(out.read_text())["ok"]


def test_file_of_another_subset_refused(luna_run, tmp_path, capsys):
    """subset1's file checked as subset0's (same settings, other inputs): refused naming the input."""
    res = luna_run / "results" / "luna16"
    foreign = tmp_path / "subset0.h5"
    shutil.copyfile(res / "patches" / "subset1.h5", foreign)
    args = _verify_args(luna_run, "subset0", foreign, res / "settings" / "patches.json", tmp_path / "r.json")
    rc, err = call(luna_verify.main, args, capsys)
    assert_refused(rc, err, ["subset0.h5", "other inputs", "seriesuid"])


def test_flipped_byte_in_a_provenance_table_fails_verification_and_reads(luna_run, tmp_path, capsys):
    """A flipped byte in provenance/nodule's centre_world: not a wrong number, a failed checksum."""
    from ctpatch.readers import PatchDataset

    res = luna_run / "results" / "luna16"
    broken = tmp_path / "subset0.h5"
    shutil.copyfile(res / "patches" / "subset0.h5", broken)
    with h5py.File(broken, "r") as f:
        ds = f["provenance/nodule"]
        assert ds.fletcher32
        info = ds.id.get_chunk_info(0)
        at = info.byte_offset + ds.dtype.fields["centre_world"][1] + 4  # inside the first row's centre_world
    with open(broken, "r+b") as fh:
        fh.seek(at)
        b = fh.read(1)
        fh.seek(at)
        fh.write(bytes([b[0] ^ 0xFF]))
    args = _verify_args(luna_run, "subset0", broken, res / "settings" / "patches.json", tmp_path / "r.json")
    rc, err = call(luna_verify.main, args, capsys)
    assert_refused(rc, err, ["subset0.h5", "provenance/nodule"])
    with pytest.raises(OSError):
        with h5py.File(broken, "r") as f:
            f["provenance/nodule"][...]
    with pytest.raises((OSError, ValueError)):
        ds = PatchDataset([broken], kind="nodule")
        [ds[i] for i in range(len(ds))]


def test_ldct_file_written_unshuffled_refused_in_a_shuffled_run(ldct, tmp_path, capsys):
    """output.shuffle false when the file was made, true now: refused naming the key."""
    from ctpatch.ldct import pairing

    from .conftest import pairs_args, run_module

    table = tmp_path / "pairs" / "L096.tsv"
    args = [*pairs_args(ldct, tmp_path, random_n=1), "--table-out", table, "--report-out", table.with_suffix(".json")]
    assert pairing.main([str(a) for a in args]) == 0
    made = settings_file(tmp_path / "made", "patches", {"mode": "ldct", "ldct": {"output": {"shuffle": False}}})
    now = settings_file(tmp_path / "now", "patches", {"mode": "ldct", "ldct": {"output": {"shuffle": True}}})
    out = tmp_path / "patches" / "L096.h5"
    rc, err = run_module("ldct.extract", "--ranks", "1", "--settings-file", made, "--pairs", table, "--out", out)
    assert rc == 0 and out.is_file(), err
    report = tmp_path / "r.json"
    rc, err = call(
        ldct_verify.main, ["--settings-file", now, "--patches", out, "--pairs", table, "--report-out", report], capsys
    )
    assert_refused(rc, err, ["L096.h5", "output.shuffle", "recorded false", "now true"])
    assert json.loads(report.read_text())["ok"] is False
