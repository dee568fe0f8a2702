"""``python -m ctpatch verify FILE…``: a patch file checked on its own (issue 22: the user tool needed four
internal arguments).  Each check is shown to fail on a file altered the way it guards against."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import h5py
import numpy as np
from paths import REPO

from ctpatch.__main__ import main as ctpatch_main
from ctpatch.report.verify import verify_files


def run_verify(*files) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run(
        [sys.executable, "-m", "ctpatch", "verify", *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_verify_passes_every_layout_with_nothing_but_the_files(luna, luna_crops, luna_volumes, tmp_path):
    files = []
    for run in (luna, luna_crops, luna_volumes):  # copied away from the run's folders and inputs
        for p in run.files:
            files.append(tmp_path / f"{p.stem}.{len(files)}.h5")
            shutil.copy(p, files[-1])
    reports = verify_files(files)
    assert [r["ok"] for r in reports] == [True] * len(files), [r["failures"] for r in reports]
    assert all(r["nodule_patches"] == 57 and r["negatives"] == 171 for r in reports)
    proc = run_verify(*files)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count(": ok (luna16, 57 nodule and 171 non_nodule patches") == len(files), proc.stdout
    assert "reading these files: IMPORT hdf5plugin BEFORE READING (codec blosc2-zstd" in proc.stdout


def tampered(src, tmp_path, name="x.h5"):
    dst = tmp_path / name
    shutil.copy(src, dst)
    return dst


def test_a_changed_settings_attribute_fails_its_digest(luna, tmp_path):
    path = tampered(luna.files[0], tmp_path)
    with h5py.File(path, "r+") as f:
        f.attrs["settings"] = f.attrs["settings"].replace('"ratio":3', '"ratio":2')
    (report,) = verify_files([path])
    assert not report["ok"]
    assert any("settings_digest" in x and "sha256 of the recorded settings" in x for x in report["failures"])


def test_a_missing_attribute_is_named(luna, tmp_path):
    path = tampered(luna.files[0], tmp_path)
    with h5py.File(path, "r+") as f:
        del f.attrs["inputs_digest"]
    (report,) = verify_files([path])
    assert not report["ok"] and "records no inputs_digest" in report["failures"][0]
    assert run_verify(path).returncode == 1


def test_a_flipped_byte_in_a_patch_chunk_fails_its_checksum(luna, tmp_path):
    path = tampered(luna.files[0], tmp_path)
    with h5py.File(path, "r") as f:
        info = f["non_nodule"].id.get_chunk_info(5)
    with open(path, "r+b") as fh:  # one byte in the middle of the stored chunk of row 5
        fh.seek(info.byte_offset + info.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    (report,) = verify_files([path])
    assert not report["ok"]
    assert any("non_nodule" in x and "row 5" in x and "Fletcher32" in x for x in report["failures"]), report


def test_a_provenance_table_rewritten_with_a_valid_checksum_fails_the_counts(luna, tmp_path):
    """A nodule's patch moved to another nodule: each nodule must keep exactly its 57 shifts."""
    path = tampered(luna.files[0], tmp_path)
    with h5py.File(path, "r+") as f:
        prov = f["provenance/nodule"][...]
        prov["nodule_index"][0] += 1
        del f["provenance/nodule"]
        f.create_dataset("provenance/nodule", data=prov, fletcher32=True)
    (report,) = verify_files([path])
    assert not report["ok"] and any("without exactly 57 patches" in x for x in report["failures"]), report


def test_ldct_parts_are_checked_together_and_alone(ldct, tmp_path):
    files = [tampered(p, tmp_path, p.name) for p in ldct.files]
    (together,) = verify_files(files)
    assert together["ok"], together["failures"]
    assert together["patches"] == together["patches_written_sum"] > 0 and "note" not in together
    (alone,) = verify_files(files[:1])
    assert alone["ok"] and "1 of the run's 2 parts" in alone["note"], alone
    with h5py.File(files[1], "r+") as f:  # a pair's count rewritten (with a valid checksum)
        pair = f["provenance/pair"][...]
        pair["patches_written"][0] += 6
        pair["patches_kept"][0] += 1
        del f["provenance/pair"]
        f.create_dataset("provenance/pair", data=pair, fletcher32=True)
    (broken,) = verify_files(files)
    assert not broken["ok"] and any("table 'pair' differs" in x for x in broken["failures"]), broken


def test_the_command_names_its_commands_and_refuses_unknown_ones(capsys):
    assert ctpatch_main(["--help"]) == 0
    assert "verify" in capsys.readouterr().out
    assert ctpatch_main(["verfy", "x.h5"]) == 2
    assert "unknown command 'verfy'" in capsys.readouterr().err


def test_a_file_that_is_not_a_patch_file_is_named(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["x"] = np.zeros(3)
    (report,) = verify_files([path])
    assert not report["ok"] and "not a ctpatch patch file" in report["failures"][0]


def test_the_installed_command_is_the_module_entry():
    text = (REPO / "pyproject.toml").read_text()
    assert 'ctpatch = "ctpatch.__main__:main"' in text and callable(ctpatch_main)


def test_a_combined_ldct_file_is_checked_through_its_sources(tmp_path):
    """A virtual combined file: its sources must be there and their chunks sound; a copied one: its own chunks."""
    from dataclasses import asdict

    from test_combine import COUNTS, patient_file

    from ctpatch.ldct.combine import combine
    from ctpatch.settings import ldct_job
    from ctpatch.store.identity import record

    attrs = record(asdict(ldct_job({})), [])
    paths = []
    for patient, n in COUNTS.items():
        paths.append(tmp_path / "patches" / f"{patient}.h5")
        paths[-1].parent.mkdir(exist_ok=True)
        patient_file(paths[-1], patient, n)
        with h5py.File(paths[-1], "r+") as f:
            f.attrs.update(attrs)
    virtual, copied = tmp_path / "combined" / "all.h5", tmp_path / "copied" / "all.h5"
    combine(paths, [virtual], seed=0, shuffle=True, how="virtual")
    combine(paths, [copied], seed=0, shuffle=True, how="copy")
    reports = verify_files([virtual, copied])
    assert [r["ok"] for r in reports] == [True, True], reports
    assert reports[0]["patches"] == sum(COUNTS.values()) and reports[0]["sources"] == len(COUNTS)
    with h5py.File(paths[1], "r") as f:
        info = f["input"].id.get_chunk_info(2)
    with open(paths[1], "r+b") as fh:  # a byte of a source's chunk
        fh.seek(info.byte_offset + info.size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    virtual_report, copied_report = verify_files([virtual, copied])
    assert not virtual_report["ok"] and any("L002.h5:/input" in x and "row 2" in x for x in virtual_report["failures"])
    assert copied_report["ok"]  # its own copy of the chunks, made before
    paths[0].unlink()
    (report,) = verify_files([virtual])
    assert not report["ok"] and any("not there" in x and "L001.h5" in x for x in report["failures"]), report
