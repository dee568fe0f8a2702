"""Tests of ctpatch.luna16.check: every problem is found before any conversion, and all are listed."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from demos import TINY_DEMO, TINY_SEED

from ctpatch.core.geometry import VolumeGrid
from ctpatch.io.mhd import write_scan
from ctpatch.luna16.check import InputError, check, main
from ctpatch.luna16.demo import write_dataset
from ctpatch.settings import scope_settings, validate, write_settings


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("luna")
    write_dataset(root, TINY_DEMO, seed=TINY_SEED)
    return root


@pytest.fixture
def root(demo_root, tmp_path) -> Path:
    """A private copy each test may damage."""
    dst = tmp_path / "luna"
    shutil.copytree(demo_root, dst)
    return dst


def run_check(root, subsets, annotations, candidates=None, unknown_series="fail", duplicates="fail"):
    """The check with no candidates table, the schema's policies and no plausibility check, unless given."""
    return check(root, subsets, annotations, candidates, unknown_series, duplicates, None, None)


def ann(root):
    return root / "CSVFILES" / "annotations.csv"


def uids(root, subset):
    return sorted(p.stem for p in (root / subset).glob("*.mhd"))


def add_row(path: Path, row: str) -> int:
    """Append a row; return its row number (header = row 1)."""
    lines = path.read_text().splitlines()
    lines.append(row)
    path.write_text("\n".join(lines) + "\n")
    return len(lines)


def test_good_inputs(root):
    table, report = run_check(root, ["subset0", "subset1"], ann(root))
    n_ann = len(ann(root).read_text().splitlines()) - 1
    assert report["scans"] == 2 and len(table) == 2
    assert report["annotations_used"] == n_ann == table["annotations"].sum()
    assert table["seriesuid"].tolist() == uids(root, "subset0") + uids(root, "subset1")
    assert table["size_x"].tolist() == [TINY_DEMO["size_xy"]] * 2
    assert report["warnings"] == [] and report["unknown_series"] == 0


def test_annotations_of_a_subset_not_selected_are_not_errors(root):
    table, report = run_check(root, ["subset0"], ann(root))
    lines = ann(root).read_text().splitlines()[1:]
    other = sum(1 for ln in lines if ln.split(",")[0] in uids(root, "subset1"))
    assert other > 0
    assert report["annotations_in_other_subsets"] == other
    assert report["annotations_used"] == len(lines) - other


def test_subset_folder_with_no_scans(root):
    (root / "subset2").mkdir()
    with pytest.raises(InputError, match="no .mhd scans") as err:
        run_check(root, ["subset0", "subset2"], ann(root))
    assert str(root / "subset2") in str(err.value)


def test_missing_subset_folder(root):
    with pytest.raises(InputError, match="subset folder not found") as err:
        run_check(root, ["subset0", "subset7"], ann(root))
    assert str(root / "subset7") in str(err.value)


def test_unknown_series_fail_is_an_error(root):
    row = add_row(ann(root), "9.9.9.9,1.0,2.0,3.0,5.0")
    with pytest.raises(InputError, match=f"row {row}: series 9.9.9.9") as err:
        run_check(root, ["subset0", "subset1"], ann(root), unknown_series="fail")
    assert str(ann(root)) in str(err.value)


def test_unknown_series_warn_is_a_warning(root):
    row = add_row(ann(root), "9.9.9.9,1.0,2.0,3.0,5.0")
    table, report = run_check(root, ["subset0", "subset1"], ann(root), unknown_series="warn")
    assert len(table) == 2
    assert report["unknown_series"] == 1
    assert len(report["warnings"]) == 1
    assert f"row {row}" in report["warnings"][0] and "9.9.9.9" in report["warnings"][0]


def test_nodule_centre_outside_the_volume(root):
    uid = uids(root, "subset1")[0]
    origin = [
        float(v)
        for v in next(
            ln for ln in (root / "subset1" / f"{uid}.mhd").read_text().splitlines() if ln.startswith("Offset")
        )
        .split("=")[1]
        .split()
    ]
    # 50 mm before the origin in x: the volume starts half a voxel (< 1 mm) before the origin
    row = add_row(ann(root), f"{uid},{origin[0] - 50.0},{origin[1] + 5.0},{origin[2] + 5.0},6.0")
    with pytest.raises(InputError, match=f"row {row}: nodule centre") as err:
        run_check(root, ["subset0", "subset1"], ann(root))
    msg = str(err.value)
    assert str(ann(root)) in msg and "outside the volume" in msg and f"{uid}.mhd" in msg


def test_nodule_within_half_a_voxel_of_the_border_is_inside(root):
    uid = uids(root, "subset0")[0]
    origin = [
        float(v)
        for v in next(
            ln for ln in (root / "subset0" / f"{uid}.mhd").read_text().splitlines() if ln.startswith("Offset")
        )
        .split("=")[1]
        .split()
    ]
    spacing = [
        float(v)
        for v in next(
            ln for ln in (root / "subset0" / f"{uid}.mhd").read_text().splitlines() if ln.startswith("ElementSpacing")
        )
        .split("=")[1]
        .split()
    ]
    add_row(ann(root), f"{uid},{origin[0] - 0.4 * spacing[0]},{origin[1]},{origin[2]},6.0")
    run_check(root, ["subset0"], ann(root))
    add_row(ann(root), f"{uid},{origin[0] - 0.6 * spacing[0]},{origin[1]},{origin[2]},6.0")
    with pytest.raises(InputError, match="outside the volume"):
        run_check(root, ["subset0"], ann(root))


def test_all_problems_listed_together(root):
    uid0 = uids(root, "subset0")[0]
    raw = root / "subset1" / f"{uids(root, 'subset1')[0]}.raw"
    raw.write_bytes(raw.read_bytes()[:100])
    (root / "subset3").mkdir()
    unknown_row = add_row(ann(root), "9.9.9.9,1.0,2.0,3.0,5.0")
    outside_row = add_row(ann(root), f"{uid0},10000.0,0.0,0.0,5.0")
    with pytest.raises(InputError) as err:
        run_check(root, ["subset0", "subset1", "subset3", "subset5"], ann(root))
    msg = str(err.value)
    assert "(5 problem(s) in the LUNA16 inputs)" in msg.splitlines()[1]
    assert f"{raw}: truncated" in msg
    assert f"{root / 'subset3'}: subset folder has no .mhd scans" in msg
    assert f"{root / 'subset5'}: subset folder not found" in msg
    assert f"row {unknown_row}: series 9.9.9.9" in msg
    assert f"row {outside_row}: nodule centre" in msg


def test_bad_annotation_table_and_candidates_reported(root):
    ann(root).write_text("seriesuid,coordX\n1,2\n")
    cand = root / "CSVFILES" / "candidates.csv"
    cand.write_text(cand.read_text().replace(",0\n", ",7\n", 1))
    with pytest.raises(InputError) as err:
        run_check(root, ["subset0"], ann(root), candidates=cand)
    msg = str(err.value)
    assert "(2 problem(s)" in msg and "missing" in msg and "expected class 0 or 1" in msg


def test_main_writes_table_and_report_or_nothing(root, tmp_path, capsys):
    scans, report = tmp_path / "out" / "scans.tsv", tmp_path / "out" / "report.json"

    def args(unknown_series="fail"):
        config = validate(
            {"luna16": {"root": str(root), "annotations": str(ann(root)), "unknown_series": unknown_series}}
        )
        write_settings(scope_settings(config, "check"), tmp_path / "check.json", "check")
        write_settings(scope_settings(config, "run"), tmp_path / "run.json", "run")  # unknown_series
        return [
            "--settings-file",
            str(tmp_path / "check.json"),
            "--run-settings-file",
            str(tmp_path / "run.json"),
            "--subsets",
            "subset0",
            "subset1",
            "--scans-out",
            str(scans),
            "--report-out",
            str(report),
        ]

    assert main(args()) == 0 and scans.is_file() and report.is_file()
    scans.unlink()
    report.unlink()
    add_row(ann(root), "9.9.9.9,1.0,2.0,3.0,5.0")
    assert main(args()) == 1
    assert "9.9.9.9" in capsys.readouterr().err
    assert not scans.exists() and not report.exists()
    assert main(args("warn")) == 0
    assert "warning" in capsys.readouterr().err and np.loadtxt(scans, dtype=str, delimiter="\t").shape[0] == 3


def test_rotated_scan_uses_its_direction_cosines(root):
    """Inside/outside is judged with the scan's direction, as SimpleITK sees it."""
    grid = VolumeGrid((30.0, -40.0, -100.0), (0.8, 0.7, 2.0), (20, 30, 10), (0, -1, 0, 1, 0, 0, 0, 0, -1))
    write_scan(root / "subset0" / "7.7.7.mhd", np.zeros(grid.shape_zyx, np.int16), grid)
    img = sitk.ReadImage(str(root / "subset0" / "7.7.7.mhd"))
    inside = img.TransformContinuousIndexToPhysicalPoint((2.0, 27.0, 8.0))
    add_row(ann(root), "7.7.7," + ",".join(map(str, inside)) + ",5.0")
    run_check(root, ["subset0"], ann(root))
    outside = img.TransformContinuousIndexToPhysicalPoint((-3.0, 5.0, 5.0))
    row = add_row(ann(root), "7.7.7," + ",".join(map(str, outside)) + ",5.0")
    with pytest.raises(InputError, match=f"row {row}: nodule centre"):
        run_check(root, ["subset0"], ann(root))
