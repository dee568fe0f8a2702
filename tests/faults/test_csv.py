"""Fault catalog: the CSV tables and the subset folders of a LUNA16 root (pre-flight check)."""

from __future__ import annotations

import json

import pytest

from ctpatch.luna16 import check as check_luna
from ctpatch.luna16 import discover

from .conftest import assert_refused, call, check_args, first_scan, tree_digest


def _ann(root):
    return root / "CSVFILES" / "annotations.csv"


def _lines(path):
    return path.read_text().splitlines()


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")


def _duplicate_row(root):
    lines = _lines(_ann(root))
    _write(_ann(root), lines + [lines[1]])  # line 2 again, as line len+1
    return ["annotations.csv", f"row {len(lines) + 1} is identical to row 2"]


def _edit_cell(column, value):
    def mutate(root):
        lines = _lines(_ann(root))
        head = lines[0].split(",")
        cells = lines[2].split(",")
        cells[head.index(column)] = value
        lines[2] = ",".join(cells)
        _write(_ann(root), lines)
        return ["annotations.csv", "row 3", *(["seriesuid"] if column == "seriesuid" else [column])]

    return mutate


def _drop_column(root):
    lines = [ln.rsplit(",", 1)[0] for ln in _lines(_ann(root))]
    _write(_ann(root), lines)
    return ["annotations.csv", "diameter_mm"]


def _semicolons(root):
    _write(_ann(root), [ln.replace(",", ";") for ln in _lines(_ann(root))])
    return ["annotations.csv", "expected columns"]


def _unknown_series(root):
    _write(_ann(root), _lines(_ann(root)) + ["1.2.3.4.5,0,0,0,6"])
    return ["annotations.csv", "1.2.3.4.5", "not among the scans"]


def _header_only(root):
    _write(_ann(root), _lines(_ann(root))[:1])
    return ["annotations.csv", "no annotation row"]


def _scan_in_two_subsets(root):
    """The same scan in subset0 and subset1: it would leak between the two folds."""
    mhd = first_scan(root)
    for f in (mhd, mhd.with_suffix(".raw")):
        (root / "subset1" / f.name).write_bytes(f.read_bytes())
    return [mhd.stem, "two subsets"]


def _outside(root):
    uid = first_scan(root).stem
    _write(_ann(root), _lines(_ann(root)) + [f"{uid},0,0,99999,6"])
    return ["annotations.csv", "outside the volume"]


def _missing(root):
    _ann(root).unlink()
    return ["annotations.csv", "file not found"]


def _empty(root):
    _ann(root).write_bytes(b"")
    return ["annotations.csv", "not a readable CSV"]


def _binary(root):
    _ann(root).write_bytes(bytes(range(128, 256)) * 8)
    return ["annotations.csv"]


def _a_folder(root):
    _ann(root).unlink()
    _ann(root).mkdir()
    return ["annotations.csv", "file not found"]


def _empty_subset(root):
    for p in (root / "subset1").iterdir():
        p.unlink()
    return ["subset1", "no .mhd scans"]


def _missing_subset(root):
    for p in (root / "subset1").iterdir():
        p.unlink()
    (root / "subset1").rmdir()
    return ["subset1", "subset folder not found"]


TABLE_CASES = {
    "duplicate_row": _duplicate_row,
    "coordX_text": _edit_cell("coordX", "abc"),
    "coordZ_inf": _edit_cell("coordZ", "inf"),
    "coordY_empty": _edit_cell("coordY", ""),
    "diameter_negative": _edit_cell("diameter_mm", "-4"),
    "diameter_zero": _edit_cell("diameter_mm", "0"),
    "seriesuid_empty": _edit_cell("seriesuid", " "),
    "column_missing": _drop_column,
    "semicolon_separated": _semicolons,
    "unknown_series": _unknown_series,
    "annotations_header_only": _header_only,
    "scan_in_two_subsets": _scan_in_two_subsets,
    "nodule_outside_volume": _outside,
    "table_missing": _missing,
    "table_empty": _empty,
    "table_binary": _binary,
    "table_is_a_folder": _a_folder,
    "subset_empty": _empty_subset,
    "subset_missing": _missing_subset,
}


def _check(root, out, capsys, subsets=("subset0", "subset1"), **luna):
    return call(
        check_luna.main,
        [
            *check_args(root, out.parent, **luna),
            "--subsets",
            *subsets,
            "--scans-out",
            out / "scans.tsv",
            "--report-out",
            out / "inputs.json",
        ],
        capsys,
    )


@pytest.mark.parametrize("case", TABLE_CASES, ids=str)
def test_table_or_folder_fault_refused_before_any_conversion(case, luna, tmp_path, capsys):
    names = TABLE_CASES[case](luna)
    before = tree_digest(luna)
    out = tmp_path / "checks"
    rc, err = _check(luna, out, capsys)
    assert_refused(rc, err, names, inputs=(luna, before), absent=[out / "scans.tsv", out / "inputs.json"])


def test_candidates_with_bad_class_refused(luna, tmp_path, capsys):
    cand = luna / "CSVFILES" / "candidates.csv"
    lines = _lines(cand)
    lines[1] = lines[1].rsplit(",", 1)[0] + ",2"
    _write(cand, lines)
    before = tree_digest(luna)
    out = tmp_path / "checks"
    rc, err = _check(luna, out, capsys, negatives={"strategy": "candidates"})
    assert_refused(
        rc, err, ["candidates.csv", "row 2", "class 0 or 1"], inputs=(luna, before), absent=[out / "scans.tsv"]
    )


def test_subset_name_that_is_no_subset_refused(luna, tmp_path, capsys):
    out = tmp_path / "checks"
    rc, err = _check(luna, out, capsys, subsets=("subset0", "subset_x"))
    assert_refused(rc, err, ["subset_x", "not a subset folder name"], absent=[out / "scans.tsv"])


def test_duplicate_rows_dropped_with_a_report_line(luna, tmp_path, capsys):
    """Not a refusal: duplicate_annotations: drop keeps the first copy and says so."""
    _, _ = _duplicate_row(luna)
    n_rows = len(_lines(_ann(luna)))
    out = tmp_path / "checks"
    rc, err = _check(luna, out, capsys, duplicate_annotations="drop")
    assert rc == 0, err
    report = json.loads((out / "inputs.json").read_text())
    assert report["dropped_duplicates"] == [[n_rows, 2]]
    assert f"row {n_rows} is identical to row 2: dropped" in err
    assert report["annotations_used"] == n_rows - 2  # header and the dropped copy


@pytest.mark.parametrize("extra", ["subset0_old", "subset1.bak", "subset_extra", "subsetA"])
def test_extra_subset_like_folder_is_a_warning_not_a_traceback(luna, tmp_path, capsys, extra):
    """Only subset<N> folders are subsets: ``subset0_old`` used to crash parsing (int("0_old"))."""
    import shutil

    shutil.copytree(luna / "subset0", luna / extra)
    subsets, others = discover.subset_folders(luna)
    assert subsets == ["subset0", "subset1"] and others == [extra]
    assert set(discover.all_series(luna).values()) == {"subset0", "subset1"}
    out = tmp_path / "checks"
    rc, err = _check(luna, out, capsys)
    assert rc == 0 and "Traceback" not in err
    assert err.startswith("warning: ") and extra in err.splitlines()[0]


def test_annotations_of_subsets_not_downloaded_are_one_line_naming_the_setting(luna, tmp_path, capsys):
    """One subset downloaded, the full annotations.csv: one line with the count and the setting, not one per row."""
    lines = _lines(_ann(luna))
    _write(_ann(luna), lines + [f"1.2.3.{i},0,0,0,6" for i in range(500)])
    before = tree_digest(luna)
    out = tmp_path / "checks"
    args = [*check_args(luna, tmp_path), "--subsets", "subset0", "subset1"]
    rc, err = call(check_luna.main, [*args, "--scans-out", out / "s.tsv", "--report-out", out / "r.json"], capsys)
    assert_refused(
        rc, err, ["annotations.csv", "500 annotation row(s)", "luna16.unknown_series: warn"], inputs=(luna, before)
    )
    assert len(err.splitlines()) < 5, err
