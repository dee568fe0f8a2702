"""End-to-end truth of SPEC section 1 step 5: after conversion, a nodule's computed voxel centre is
within half a voxel of where the nodule really is in the converted volume.

Demo scans (two identity-direction scans with different spacings, one rotated 90 degrees about z
with a flipped z axis) get nodules at known world positions chosen a fraction of a voxel off the
output grid's voxel centres.  After ``convert`` (bspline and linear), the voxel centre that
``make_labels.nodules_of_scan`` computes is compared with

* the intensity-weighted centroid of the nodule's bright blob in the converted volume, and
* the true world position mapped to the output grid by the SPEC formulas written out here.

The reference's drift (``spacing * n_in / n_out``, up to 0.8 voxel) or an x/z swap fails this.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from demos import RESAMPLE_DEMO

from ctpatch.core.geometry import VolumeGrid
from ctpatch.io.mhd import write_scan
from ctpatch.io.tables import read_annotations
from ctpatch.luna16.convert import convert
from ctpatch.luna16.demo import Nodule, _lung_boxes, plan_scans, synthesize
from ctpatch.luna16.labels import nodules_of_scan
from ctpatch.settings import defaults

TARGET = 1.25
ROT_FLIP = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)
# fractional offsets of each nodule from a voxel centre of the output grid, (x, y, z) voxels
FRACTIONS = [(0.2, -0.25, 0.15), (-0.15, 0.22, -0.2), (0.1, 0.1, -0.25)]
DIAMETER = 9.0
LUNG_HU, NODULE_HU = -850.0, 60.0


def spec_output_grid(grid: VolumeGrid):
    """SPEC 1.2 and 1.5 written out: size, spacing, and the corner-aligned origin, (x, y, z)."""
    size = np.asarray(grid.size, float)
    spacing = np.asarray(grid.spacing, float)
    n = np.round(size * spacing / TARGET)
    new_spacing = spacing / (n / size)
    D = np.asarray(grid.direction, float).reshape(3, 3)
    corner = np.asarray(grid.origin) - D @ (spacing / 2)  # outer face of the first input voxel
    origin = corner + D @ (new_spacing / 2)
    return origin, new_spacing, n.astype(int), D


def to_index(world, origin, spacing, D):
    return D.T @ (np.asarray(world, float) - origin) / spacing


def normalized(hu):
    return min(max((hu + 1000.0) / 1400.0, 0.0), 1.0) - 0.25


def make_scans():
    plans = plan_scans(RESAMPLE_DEMO, seed=0)
    a = plans[0]
    b = dataclasses.replace(plans[1], grid=dataclasses.replace(plans[1].grid, spacing=(0.66, 0.66, 2.0)))
    c = dataclasses.replace(
        plans[0],
        series_uid="1.2.3.rotated",
        grid=VolumeGrid(plans[0].grid.origin, (0.7, 0.75, 1.25), (256, 240, 80), ROT_FLIP),
    )
    out = []
    for plan in (a, b, c):
        origin, spacing, _, D = spec_output_grid(plan.grid)
        _, lungs = _lung_boxes(plan.grid)
        places = [lungs[0][0], lungs[1][0], lungs[1][0] + np.array([0.0, 15.0, 0.0])]
        nodules = []
        for place, frac in zip(places, FRACTIONS):
            idx = np.rint(to_index(place, origin, spacing, D)) + np.asarray(frac)
            world = origin + D @ (spacing * idx)
            nodules.append(Nodule(tuple(float(v) for v in world), DIAMETER))
        out.append(dataclasses.replace(plan, nodules=tuple(nodules)))
    return out


@pytest.fixture(scope="module")
def scans(tmp_path_factory):
    root = tmp_path_factory.mktemp("truth")
    plans = make_scans()
    rows = []
    for plan in plans:
        write_scan(root / f"{plan.series_uid}.mhd", synthesize(plan, 0, 20.0), plan.grid)
        rows += [
            f"{plan.series_uid},{n.world[0]!r},{n.world[1]!r},{n.world[2]!r},{n.diameter_mm!r}" for n in plan.nodules
        ]
    ann = root / "annotations.csv"
    ann.write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n" + "\n".join(rows) + "\n")
    return root, plans, ann


def test_the_scans_are_varied_enough(scans):
    _, plans, _ = scans
    spacings = {p.grid.spacing for p in plans}
    assert len(spacings) == 3
    assert sum(p.grid.direction != VolumeGrid.direction for p in plans) == 1
    for p in plans:
        _, _, n, _ = spec_output_grid(p.grid)
        assert np.all(n > 68), "a 68-voxel patch must cover only part of the volume on every axis"


def blob_centroid(volume, guess_xyz, radius_vox):
    """Intensity-weighted centroid (x, y, z) of the bright blob within radius_vox of guess_xyz."""
    lo, hi = normalized(LUNG_HU), normalized(NODULE_HU)
    c = np.rint(guess_xyz).astype(int)
    r = int(np.ceil(radius_vox)) + 1
    box = volume[c[2] - r : c[2] + r + 1, c[1] - r : c[1] + r + 1, c[0] - r : c[0] + r + 1]
    z, y, x = np.indices(box.shape)
    x, y, z = x + c[0] - r, y + c[1] - r, z + c[2] - r
    near = (x - guess_xyz[0]) ** 2 + (y - guess_xyz[1]) ** 2 + (z - guess_xyz[2]) ** 2 <= radius_vox**2
    w = np.clip((box - lo) / (hi - lo), 0.0, 1.0) * near
    w[w < 0.2] = 0.0  # ignore noise of the lung
    total = w.sum()
    assert total > 10
    return np.array([(w * x).sum(), (w * y).sum(), (w * z).sum()]) / total


@pytest.mark.parametrize("interpolator", ["bspline", "linear"])
def test_nodule_voxel_within_half_a_voxel_of_truth(scans, interpolator):
    root, plans, ann_path = scans
    ann = read_annotations(ann_path, "fail")
    settings = defaults("convert").to_dict()
    settings["resample"]["interpolator"] = interpolator
    for plan in plans:
        volume, sidecar = convert(root / f"{plan.series_uid}.mhd", settings)
        origin, spacing, n, D = spec_output_grid(plan.grid)
        grid = VolumeGrid.from_dict(sidecar["grid"])
        # the sidecar grid is the SPEC grid
        assert grid.size == tuple(n.tolist()) and volume.shape == tuple(n[::-1].tolist())
        np.testing.assert_allclose(grid.spacing, spacing, rtol=1e-9)
        np.testing.assert_allclose(grid.origin, origin, atol=1e-6)
        assert sidecar["seriesuid"] == plan.series_uid
        rows = nodules_of_scan(ann, grid, "subset0", plan.series_uid, ann_path)
        assert len(rows) == len(plan.nodules) == 3
        for row, nodule, frac in zip(rows, plan.nodules, FRACTIONS):
            voxel = np.array([row["voxel_x"], row["voxel_y"], row["voxel_z"]])
            truth = to_index(nodule.world, origin, spacing, D)
            # the truth is where it was put: a known fraction off a voxel centre
            np.testing.assert_allclose(truth - np.rint(truth), frac, atol=1e-6)
            assert np.all(np.abs(voxel - truth) <= 0.5), (plan.series_uid, voxel, truth)
            centroid = blob_centroid(volume, truth, DIAMETER / 2 / TARGET + 2.5)
            assert np.all(np.abs(centroid - truth) < 0.15), (interpolator, plan.series_uid, centroid - truth)
            assert np.all(np.abs(voxel - centroid) <= 0.5), (interpolator, plan.series_uid, voxel, centroid)
            # the voxel itself is inside the nodule in the converted volume
            assert volume[voxel[2], voxel[1], voxel[0]] > normalized(-200.0)
