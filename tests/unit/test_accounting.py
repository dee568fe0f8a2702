"""Nodule accounting: each annotation row gets the right status and patch count."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest

from ctpatch.luna16.accounting import account, main
from ctpatch.luna16.job import PROV_NODULE
from ctpatch.settings import luna16_settings, scope_settings, validate, write_settings


@pytest.fixture
def layout(tmp_path):
    root = tmp_path / "LUNA16"
    for subset, uid in (("subset0", "1.1"), ("subset1", "2.2")):
        (root / subset).mkdir(parents=True)
        (root / subset / f"{uid}.mhd").write_text("")  # only the names matter here
    ann = tmp_path / "annotations.csv"
    ann.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.1,1,2,3,6\n2.2,4,5,6,7\n9.9,0,0,0,5\n1.1,7,8,9,8\n")
    table = tmp_path / "nodules.tsv"
    pd.DataFrame(
        {
            "subset": ["subset0", "subset0"],
            "seriesuid": ["1.1", "1.1"],
            "nodule_index": [0, 1],
            "annotation_row": [2, 5],
            "voxel_x": [1, 2],
            "voxel_y": [3, 4],
            "voxel_z": [5, 6],
        }
    ).to_csv(table, sep="\t", index=False)

    def patches(counts):
        path = tmp_path / f"patches{sum(counts)}.h5"
        rows = np.zeros(sum(counts), dtype=PROV_NODULE)
        rows["seriesuid"] = b"1.1"
        rows["annotation_row"] = np.repeat([2, 5], counts)
        with h5py.File(path, "w") as f:
            f.create_dataset("provenance/nodule", data=rows)
        return path

    return ann, root, table, patches


def test_each_annotation_gets_its_status(layout):
    ann, root, table, patches = layout
    out = account(ann, root, [table], [patches([57, 57])], per_nodule=57, duplicates="fail").set_index("annotation_row")
    assert out.loc[2, "status"] == "patched" and out.loc[2, "patches"] == 57 and out.loc[2, "voxel_xyz"] == "1 3 5"
    assert out.loc[5, "status"] == "patched" and out.loc[5, "nodule_index"] == 1
    assert out.loc[3, "status"] == "subset not processed" and out.loc[3, "subset"] == "subset1"
    assert out.loc[4, "status"] == "unknown series" and out.loc[4, "patches"] == 0


def test_missing_patches_fail_the_step(layout, tmp_path, capsys):
    ann, root, table, patches = layout
    settings = tmp_path / "patches.json"  # the default shifts: 57 patches per nodule
    config = validate({"luna16": {"root": str(root)}})
    write_settings(luna16_settings(config), settings, "patches")
    write_settings(scope_settings(config, "check"), tmp_path / "check.json", "check")
    args = [
        "--annotations",
        str(ann),
        "--settings-file",
        str(settings),
        "--check-settings-file",
        str(tmp_path / "check.json"),
        "--nodules",
        str(table),
        "--patches",
        str(patches([57, 56])),
        "--out",
        str(tmp_path / "acc.tsv"),
        "--summary-out",
        str(tmp_path / "acc.json"),
    ]
    assert main(args) == 1
    assert "rows [5]" in capsys.readouterr().err
    out = pd.read_csv(tmp_path / "acc.tsv", sep="\t").set_index("annotation_row")
    assert out.loc[5, "status"] == "MISSING PATCHES (56 of 57)"


def test_identical_rows_fail_by_default_and_are_accounted_when_dropped(layout, tmp_path, capsys):
    ann, root, table, patches = layout
    ann.write_text(ann.read_text() + "1.1,1,2,3,6\n")  # line 6 = line 2

    def args(duplicates):
        settings = tmp_path / f"patches-{duplicates}.json"
        config = validate({"luna16": {"root": str(root), "duplicate_annotations": duplicates}})
        write_settings(luna16_settings(config), settings, "patches")
        write_settings(scope_settings(config, "check"), tmp_path / f"check-{duplicates}.json", "check")
        return [
            "--annotations",
            str(ann),
            "--settings-file",
            str(settings),
            "--check-settings-file",
            str(tmp_path / f"check-{duplicates}.json"),
            "--nodules",
            str(table),
            "--patches",
            str(patches([57, 57])),
            "--out",
            str(tmp_path / "acc.tsv"),
            "--summary-out",
            str(tmp_path / "acc.json"),
        ]

    assert main(args("fail")) == 1
    first = capsys.readouterr().err.splitlines()[0]
    assert first.startswith(f"error: {ann}: row 6 is identical to row 2") and not (tmp_path / "acc.tsv").exists()
    assert main(args("drop")) == 0
    out = pd.read_csv(tmp_path / "acc.tsv", sep="\t").set_index("annotation_row")
    assert out.loc[6, "status"] == "duplicate of row 2" and out.loc[6, "patches"] == 0
    assert out.loc[2, "status"] == "patched" and out.loc[2, "patches"] == 57  # counted once, not twice


def test_overlapping_nodules_of_one_scan_are_flagged(layout):
    ann, root, table, patches = layout
    # rows 2 (1,2,3; r 3) and 5 (7,8,9; r 4): centres sqrt(108) = 10.4 mm apart > 7 mm: no overlap
    out = account(ann, root, [table], [patches([57, 57])], per_nodule=57, duplicates="fail").set_index("annotation_row")
    assert out["overlaps"].fillna("").eq("").all()
    ann.write_text(ann.read_text().replace("1.1,7,8,9,8", "1.1,5,5,5,8"))  # sqrt(16+9+4) = 5.4 mm < 3 + 4
    out = account(ann, root, [table], [patches([57, 57])], per_nodule=57, duplicates="fail").set_index("annotation_row")
    assert str(out.loc[2, "overlaps"]) == "5" and str(out.loc[5, "overlaps"]) == "2"
    assert out.loc[3, "overlaps"] == "" and out.loc[4, "overlaps"] == ""  # other scans
