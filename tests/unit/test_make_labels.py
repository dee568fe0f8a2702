"""Tests of ctpatch.luna16.labels (SPEC section 1 step 4): placement, errors, union of spheres."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest

from ctpatch.core.geometry import VolumeGrid
from ctpatch.io.tables import read_annotations
from ctpatch.luna16.labels import LabelError, label_volume, main, nodules_of_scan

FLIP_X = (-1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)


def write_ann(tmp_path, rows):
    path = tmp_path / "annotations.csv"
    body = "".join(",".join(map(str, r)) + "\n" for r in rows)
    path.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n" + body)
    return path


def my_voxel(grid, world):
    """world -> nearest voxel (x, y, z) for an orthonormal direction: D^T (w - o) / spacing."""
    D = np.asarray(grid.direction, dtype=float).reshape(3, 3)
    return np.rint(D.T @ (np.asarray(world, float) - np.asarray(grid.origin)) / np.asarray(grid.spacing)).astype(int)


def brute_union(shape_zyx, centres_xyz, radii):
    out = np.zeros(shape_zyx, dtype=bool)
    for z, y, x in itertools.product(*(range(n) for n in shape_zyx)):
        for (cx, cy, cz), r in zip(centres_xyz, radii):
            if (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= r * r:
                out[z, y, x] = True
                break
    return out


GRIDS = [
    VolumeGrid((-10.0, 5.0, -100.0), (1.25, 1.0, 1.5), (20, 16, 12)),
    VolumeGrid((10.0, 5.0, -100.0), (1.25, 1.0, 1.5), (20, 16, 12), FLIP_X),
]


@pytest.mark.parametrize("grid", GRIDS)
def test_mask_is_the_union_of_brute_force_spheres(tmp_path, grid):
    # voxel targets (x, y, z), one near each of several borders, two overlapping
    targets = [(3.2, 4.4, 5.1), (5.4, 6.2, 5.3), (19.3, 15.0, 0.2), (0.0, 8.0, 11.4)]
    diameters = [6.0, 4.1, 9.0, 5.0]  # radius int((d / 1.0) // 2): 3, 2, 4, 2 (spacing y is 1.0)
    worlds = [grid.index_to_world(t) for t in targets]
    path = write_ann(tmp_path, [("s1", *w, d) for w, d in zip(worlds, diameters)] + [("other", 0, 0, 0, 99.0)])
    rows = nodules_of_scan(read_annotations(path, "fail"), grid, "subset0", "s1", path)
    assert len(rows) == 4
    centres = [my_voxel(grid, w) for w in worlds]
    assert [[r["voxel_x"], r["voxel_y"], r["voxel_z"]] for r in rows] == [c.tolist() for c in centres]
    assert [c.tolist() for c in centres] == [[3, 4, 5], [5, 6, 5], [19, 15, 0], [0, 8, 11]]
    assert [r["radius_vox"] for r in rows] == [3, 2, 4, 2]
    assert [r["annotation_row"] for r in rows] == [2, 3, 4, 5]
    assert [r["nodule_index"] for r in rows] == [0, 1, 2, 3]
    for r, t in zip(rows, targets):
        np.testing.assert_allclose([r["index_x"], r["index_y"], r["index_z"]], t, atol=1e-9)
    mask = label_volume(grid, rows)
    assert mask.shape == (12, 16, 20) and mask.dtype == bool
    np.testing.assert_array_equal(mask, brute_union((12, 16, 20), centres, [3, 2, 4, 2]))


def test_radius_uses_the_y_spacing(tmp_path):
    grid = VolumeGrid((0.0, 0.0, 0.0), (0.5, 2.0, 3.0), (10, 10, 10))
    path = write_ann(tmp_path, [("s", 2.5, 10.0, 15.0, 8.9)])
    (row,) = nodules_of_scan(read_annotations(path, "fail"), grid, "subset0", "s", path)
    assert row["radius_vox"] == 2  # int((8.9 / 2.0) // 2); with x spacing it would be 8


def test_nodules_of_other_scans_are_ignored(tmp_path):
    grid = GRIDS[0]
    path = write_ann(tmp_path, [("other", -1000, 0, 0, 5.0)])
    assert nodules_of_scan(read_annotations(path, "fail"), grid, "subset0", "s1", path) == []
    assert not label_volume(grid, []).any()


@pytest.mark.parametrize("index", [(-0.6, 3, 3), (3, 16.5, 3), (3, 3, 12.7), (-50, -50, -50)])
def test_centre_outside_volume_is_an_error(tmp_path, index):
    grid = GRIDS[1]
    world = grid.index_to_world(index)
    path = write_ann(tmp_path, [("s1", *grid.index_to_world((1, 1, 1)), 5.0), ("s1", *world, 5.0)])
    with pytest.raises(LabelError, match="row 3: nodule centre") as err:
        nodules_of_scan(read_annotations(path, "fail"), grid, "subset0", "s1", path)
    msg = str(err.value)
    assert str(path) in msg and "s1" in msg and "outside the volume" in msg


def test_main_writes_masks_and_table(tmp_path):
    grid = GRIDS[1]
    sidecars = []
    for uid in ("a", "b"):
        p = tmp_path / "vol" / f"{uid}.json"
        p.parent.mkdir(exist_ok=True)
        p.write_text(json.dumps({"seriesuid": uid, "grid": grid.to_dict()}))
        sidecars.append(str(p))
    w = grid.index_to_world((4, 5, 6))
    path = write_ann(tmp_path, [("a", *w, 5.0), ("b", *grid.index_to_world((10, 10, 1)), 3.0), ("a", *w, 2.0)])
    masks, table = tmp_path / "masks", tmp_path / "nodules.tsv"
    assert (
        main(
            [
                "--subset",
                "subset3",
                "--sidecars",
                *sidecars,
                "--annotations",
                str(path),
                "--masks-dir",
                str(masks),
                "--table-out",
                str(table),
            ]
        )
        == 0
    )
    df = pd.read_csv(table, sep="\t", dtype={"seriesuid": str})
    assert df["seriesuid"].tolist() == ["a", "a", "b"]
    assert df["subset"].unique().tolist() == ["subset3"]
    assert df[["voxel_x", "voxel_y", "voxel_z"]].to_numpy().tolist() == [[4, 5, 6], [4, 5, 6], [10, 10, 1]]
    a = np.load(masks / "a.npy")
    np.testing.assert_array_equal(a, brute_union(grid.shape_zyx, [(4, 5, 6)], [2]))
    np.testing.assert_array_equal(np.load(masks / "b.npy"), brute_union(grid.shape_zyx, [(10, 10, 1)], [1]))


def test_main_writes_nothing_when_an_annotation_is_outside(tmp_path, capsys):
    grid = GRIDS[0]
    sidecars = []
    for uid in ("a", "b"):
        p = tmp_path / f"{uid}.json"
        p.write_text(json.dumps({"seriesuid": uid, "grid": grid.to_dict()}))
        sidecars.append(str(p))
    path = write_ann(tmp_path, [("a", *grid.index_to_world((4, 5, 6)), 5.0), ("b", 1e4, 0.0, 0.0, 5.0)])
    masks, table = tmp_path / "masks", tmp_path / "nodules.tsv"
    assert (
        main(
            [
                "--subset",
                "subset0",
                "--sidecars",
                *sidecars,
                "--annotations",
                str(path),
                "--masks-dir",
                str(masks),
                "--table-out",
                str(table),
            ]
        )
        == 1
    )
    assert "row 3" in capsys.readouterr().err
    assert not table.exists() and not (masks / "a.npy").exists()
