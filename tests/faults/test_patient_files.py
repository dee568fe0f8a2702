"""Fault catalog: a job over several LDCT patients gets every patient's files on its command line, in
patient order; a file out of place (another patient's name, a missing or extra one) is refused naming
it, before anything is written.  And the one-process, one-MPI-world run of two patients writes the same
files as one run per patient."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import h5py
import pytest

from ctpatch.ldct import pairing as pair_ldct
from ctpatch.ldct import verify as verify_ldct
from ctpatch.luna16 import verify as verify_luna
from ctpatch.report import sanity

from .conftest import SHARED_LDCT, call, run_module, settings_file

PATIENTS = ("L096", "L143")


def refused(rc, err: str, words, absent=()) -> None:
    """An argument refusal: exit status 2, the words in the error line, no traceback, nothing written."""
    assert rc == 2, err
    line = next(ln for ln in err.splitlines() if "error:" in ln)
    for word in [words] if isinstance(words, str) else words:
        assert str(word) in line, f"{word!r} not in {line!r}"
    assert "Traceback" not in err, err
    for path in absent:
        assert not Path(path).exists(), path


@pytest.fixture
def two(tmp_path) -> Path:
    """Two real LDCT patients (4 slice pairs each) under one root."""
    if not all((SHARED_LDCT / p).is_dir() for p in PATIENTS):
        pytest.skip(f"real LDCT data not found under {SHARED_LDCT}")
    for p in PATIENTS:
        shutil.copytree(SHARED_LDCT / p, tmp_path / "ldct" / p)
    return tmp_path / "ldct"


def pairs_settings(root: Path, folder: Path) -> Path:
    return settings_file(folder, "pairs", {"mode": "ldct", "ldct": {"root": str(root), "random_n": 1}})


def pair_both(root: Path, folder: Path, capsys) -> list[Path]:
    """Pair both patients in one run (as the workflow's one job does); their tables."""
    out = folder / "pairs"
    tables = [out / f"{p}.tsv" for p in PATIENTS]
    rc, err = call(
        pair_ldct.main,
        [
            "--settings-file",
            pairs_settings(root, folder),
            "--patient-dir",
            *(root / p for p in PATIENTS),
            "--table-out",
            *tables,
            "--report-out",
            *(out / f"{p}.json" for p in PATIENTS),
        ],
        capsys,
    )
    assert rc == 0 and all(t.is_file() for t in tables), err
    return tables


def patches_settings(root: Path, folder: Path) -> Path:
    return settings_file(folder, "patches", {"mode": "ldct", "ldct": {"root": str(root)}})


def test_pairing_refuses_a_table_named_after_another_patient(two, tmp_path, capsys):
    out = tmp_path / "pairs"
    swapped = [out / "L143.tsv", out / "L096.tsv"]
    rc, err = call(
        pair_ldct.main,
        [
            "--settings-file",
            pairs_settings(two, tmp_path),
            "--patient-dir",
            *(two / p for p in PATIENTS),
            "--table-out",
            *swapped,
            "--report-out",
            *(out / f"{p}.json" for p in PATIENTS),
        ],
        capsys,
    )
    refused(rc, err, ["--table-out", swapped[0], "not named after its group L096"], absent=[out])


def test_pairing_refuses_fewer_reports_than_patients(two, tmp_path, capsys):
    out = tmp_path / "pairs"
    rc, err = call(
        pair_ldct.main,
        [
            "--settings-file",
            pairs_settings(two, tmp_path),
            "--patient-dir",
            *(two / p for p in PATIENTS),
            "--table-out",
            *(out / f"{p}.tsv" for p in PATIENTS),
            "--report-out",
            out / "L096.json",
        ],
        capsys,
    )
    refused(rc, err, ["--report-out", "expected 1 file(s) for each of the 2 group(s) L096, L143, got 1"], absent=[out])


def test_extraction_refuses_an_output_of_another_patient(two, tmp_path, capsys):
    tables = pair_both(two, tmp_path, capsys)
    out = tmp_path / "patches"
    outs = [out / "L096.part0.h5", out / "L143.part0.h5", out / "L096.part1.h5", out / "L143.part1.h5"]
    rc, err = run_module(
        "ldct.extract",
        "--ranks",
        "1",
        "--settings-file",
        patches_settings(two, tmp_path),
        "--pairs",
        *tables,
        "--out",
        *outs,
    )
    refused(rc, err, ["--out", outs[1], "not named after its group L096"], absent=[out])


def test_extraction_refuses_outputs_not_shared_evenly(two, tmp_path, capsys):
    tables = pair_both(two, tmp_path, capsys)
    out = tmp_path / "patches"
    rc, err = run_module(
        "ldct.extract",
        *("--ranks", "1", "--settings-file", patches_settings(two, tmp_path), "--pairs", *tables),
        *("--out", out / "L096.h5", out / "L143.h5", out / "L143.part1.h5"),
    )
    refused(rc, err, ["--out", "the same number of files for each of the 2 group(s) L096, L143, got 3"], absent=[out])


def test_verification_refuses_a_report_of_another_patient(tmp_path, capsys):
    reports = [tmp_path / "L143.verify.json", tmp_path / "L096.verify.json"]
    rc, err = call(
        verify_ldct.main,
        [
            "--settings-file",
            tmp_path / "patches.json",
            "--pairs",
            *(tmp_path / f"{p}.tsv" for p in PATIENTS),
            "--patches",
            *(tmp_path / f"{p}.h5" for p in PATIENTS),
            "--report-out",
            *reports,
        ],
        capsys,
    )
    refused(rc, err, ["--report-out", reports[0], "not named after its group L096"], absent=reports)


def test_sanity_refuses_patch_files_not_shared_evenly(tmp_path, capsys):
    pngs = [tmp_path / f"{p}.png" for p in PATIENTS]
    rc, err = call(sanity.main, ["--patches", tmp_path / "L096.h5", "--out", *pngs], capsys)
    refused(rc, err, ["--patches", "for each of the 2 group(s) L096, L143, got 1"], absent=pngs)


def test_luna_verification_wants_both_sidecars_and_masks(tmp_path, capsys):
    rc, err = call(
        verify_luna.main,
        [
            "--patches",
            tmp_path / "subset0.h5",
            "--nodules",
            tmp_path / "nodules.tsv",
            "--settings-file",
            tmp_path / "patches.json",
            "--sidecars",
            tmp_path / "a.json",
            "--report-out",
            tmp_path / "r.json",
        ],
        capsys,
    )
    refused(rc, err, ["--sidecars and --masks-dir", "expected both"], absent=[tmp_path / "r.json"])


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_patients_in_one_run_write_what_one_run_each_writes(two, tmp_path, capsys):
    """One process, one MPI world, both patients (split in two parts each), as the workflow's one job:
    the files equal, byte for byte, one run per patient; each records its patient as its group."""
    tables = pair_both(two, tmp_path, capsys)
    settings = settings_file(
        tmp_path, "patches", {"mode": "ldct", "ldct": {"root": str(two), "output": {"nsplit": 2, "shuffle": True}}}
    )
    both = tmp_path / "both"
    outs = [both / f"{p}.part{k}.h5" for p in PATIENTS for k in (0, 1)]
    rc, err = run_module(
        "ldct.extract", "--ranks", "1", "--settings-file", settings, "--pairs", *tables, "--out", *outs
    )
    assert rc == 0, err
    for patient, table in zip(PATIENTS, tables):
        alone = tmp_path / "alone" / patient
        parts = [alone / f"{patient}.part{k}.h5" for k in (0, 1)]
        rc, err = run_module(
            "ldct.extract", "--ranks", "1", "--settings-file", settings, "--pairs", table, "--out", *parts
        )
        assert rc == 0, err
        for k, part in enumerate(parts):
            assert sha256(both / part.name) == sha256(part), part.name
            with h5py.File(part, "r") as f:
                assert f.attrs["group"] == patient
                assert {r["patient"].decode() for r in f["provenance/patch"][...]} == {patient}
            assert part.name == f"{patient}.part{k}.h5"
    # the verification of both patients in one run reads each patient's parts
    reports = [tmp_path / "reports" / f"{p}.verify.json" for p in PATIENTS]
    rc, err = run_module(
        "ldct.verify",
        *("--settings-file", settings, "--pairs", *tables, "--patches", *outs, "--report-out", *reports),
    )
    assert rc == 0, err
    for patient, report in zip(PATIENTS, reports):
        text = report.read_text()
        assert (
            '"ok": true' in text and f"{patient}.part1.h5" in text and PATIENTS[1 - PATIENTS.index(patient)] not in text
        )
