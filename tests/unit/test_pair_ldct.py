"""Tests of ctpatch.ldct.pairing on the real LDCT slices in /work/shared/data (read in place;
modified copies live in pytest's tmp_path)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pydicom
import pytest
from _patchfiles import pair_patient
from paths import SHARED_DATA, SHARED_LDCT

from ctpatch.ldct.pairing import TABLE_COLUMNS, select_random_n

LONG = SHARED_DATA / "ldct_longnames"
QUARTER, FULL = "quarter_3mm_sharp_sorted", "full_3mm_sharp_sorted"

pytestmark = pytest.mark.skipif(
    not (SHARED_LDCT.is_dir() and LONG.is_dir()), reason=f"real LDCT data not found under {SHARED_DATA}"
)


def run(tmp_path, patient_dir, input_dir, target_dir, name="t", **pairs):
    """The CLI as the rule runs it; ``pairs``: the other keys of the settings scope 'pairs'."""
    table, report = tmp_path / f"{name}.tsv", tmp_path / f"{name}.json"
    rc = pair_patient(patient_dir, table, report, input_dir=input_dir, target_dir=target_dir, **pairs)
    return rc, table, report


def header(path):
    return pydicom.dcmread(path, stop_before_pixels=True)


def test_longnames_paired_by_position(tmp_path):
    rc, table, report = run(tmp_path, LONG / "L143", "quarter_3mm", "full_3mm", pair_by="position")
    assert rc == 0
    df = pd.read_csv(table, sep="\t")
    assert list(df.columns) == TABLE_COLUMNS
    assert len(df) == 7 and df["pair_index"].tolist() == list(range(7))
    assert (df["patient"] == "L143").all() and df["selected"].all()
    for row in df.itertuples():
        a, b = header(row.input_path), header(row.target_path)
        # independent of the code: same slice position in both headers, and the file names
        # carry the same slice number (QD_...0003.NNNN vs FD_...0001.NNNN) although they differ
        assert float(a.ImagePositionPatient[2]) == pytest.approx(float(b.ImagePositionPatient[2]), abs=1e-3)
        assert row.slice_z == pytest.approx(float(a.ImagePositionPatient[2]))
        assert row.instance == int(a.InstanceNumber)
        assert (row.rows, row.cols) == (int(a.Rows), int(a.Columns))
        assert Path(row.input_path).name != Path(row.target_path).name
        assert Path(row.input_path).name.split(".")[3] == Path(row.target_path).name.split(".")[3]
        assert "_QD_" in row.input_path and "_FD_" in row.target_path
    assert df["slice_z"].is_monotonic_increasing
    rep = json.loads(report.read_text())
    assert rep["counts"] == {"input_files": 7, "target_files": 7, "pairs": 7, "problems": 0, "selected": 7}
    assert rep["problems"] == [] and rep["selected"] == 7


def test_random_n_selects_n_deterministically(tmp_path):
    args = (LONG / "L192", "quarter_3mm", "full_3mm")
    _, t1, r1 = run(tmp_path, *args, name="a", random_n=3, seed=5)
    _, t2, _ = run(tmp_path, *args, name="b", random_n=3, seed=5)
    assert t1.read_bytes() == t2.read_bytes()
    df = pd.read_csv(t1, sep="\t")
    assert len(df) == 7 and int(df["selected"].sum()) == 3
    assert json.loads(r1.read_text())["selected"] == 3
    # other seeds choose other pairs (some of them), always exactly N
    masks = {tuple(select_random_n("L192", 7, 3, seed)) for seed in range(10)}
    assert len(masks) > 1 and all(sum(m) == 3 for m in masks)


@pytest.mark.parametrize("n", [0, 4, 9])
def test_random_n_zero_or_too_large_selects_all(tmp_path, n):
    rc, table, _ = run(tmp_path, SHARED_LDCT / "L096", QUARTER, FULL, random_n=n)
    assert rc == 0
    assert pd.read_csv(table, sep="\t")["selected"].all()


def test_by_name_on_same_names_gives_same_pairs(tmp_path):
    _, t_pos, _ = run(tmp_path, SHARED_LDCT / "L286", QUARTER, FULL, pair_by="position", name="pos")
    _, t_name, _ = run(tmp_path, SHARED_LDCT / "L286", QUARTER, FULL, pair_by="name", name="name")
    a, b = pd.read_csv(t_pos, sep="\t"), pd.read_csv(t_name, sep="\t")
    pd.testing.assert_frame_equal(a, b)
    assert all(Path(x).name == Path(y).name for x, y in zip(a["input_path"], a["target_path"]))


@pytest.fixture
def broken_patient(tmp_path):
    """L096 with one target slice missing."""
    root = tmp_path / "data" / "L096"
    for sub in (QUARTER, FULL):
        (root / sub).mkdir(parents=True)
        for f in sorted((SHARED_LDCT / "L096" / sub).glob("*.IMA")):
            shutil.copyfile(f, root / sub / f.name)
    (root / FULL / "000078.IMA").unlink()
    return root


def test_missing_partner_fails_naming_the_file(tmp_path, broken_patient, capsys):
    rc, table, report = run(tmp_path, broken_patient, QUARTER, FULL, on_error="fail")
    assert rc == 1
    err = capsys.readouterr().err
    assert "000078.IMA" in err and "L096" in err
    assert not table.exists() and not report.exists()


def test_missing_partner_dropped_and_reported(tmp_path, broken_patient):
    rc, table, report = run(tmp_path, broken_patient, QUARTER, FULL, on_error="drop")
    assert rc == 0
    df = pd.read_csv(table, sep="\t")
    assert len(df) == 3 and not df["input_path"].str.endswith("000078.IMA").any()
    rep = json.loads(report.read_text())
    assert rep["counts"]["pairs"] == 3 and rep["counts"]["input_files"] == 4 and rep["counts"]["target_files"] == 3
    assert any("000078.IMA" in p for p in rep["problems"])


def test_missing_folder_fails(tmp_path, capsys):
    rc, table, _ = run(tmp_path, SHARED_LDCT / "L096", "no_such_folder", FULL)
    assert rc == 1 and "no_such_folder" in capsys.readouterr().err
    assert not table.exists()
