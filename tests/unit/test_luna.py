"""Tests of ctpatch.core.nodules (SPEC section 1 steps 5-8): cutting, label patches, negatives.

The volume has different sizes on every axis and a value that encodes its own (z, y, x)
position, so any axis swap or off-by-one shows up.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ctpatch.core.nodules import (
    MaskIndex,
    PatchLocation,
    crop_mask_xyz,
    cut_image_xyz,
    cut_label,
    negatives_per_scan,
    nodule_locations,
    random_centres,
)
from ctpatch.core.rng import keyed_rng
from ctpatch.core.shifts import DEFAULT_DIRECTIONS, shift_offsets
from ctpatch.settings import key_schema

SHAPE_ZYX = (40, 50, 60)


def coded_volume():
    z, y, x = np.indices(SHAPE_ZYX)
    return (10000 * z + 100 * y + x).astype(np.float32)


def cut_image(volume_zyx, loc, fill, dtype=np.float32):
    """The image patch at ``loc`` as the extraction cuts it: from the volume transposed to (x, y, z)."""
    return cut_image_xyz(np.ascontiguousarray(volume_zyx.transpose(2, 1, 0)), loc, fill, dtype)


def touches_mask(mask_zyx, loc) -> bool:
    """Whether the patch box at ``loc`` holds a mask voxel, as the extraction finds it (index, then voxels)."""
    mask_xyz = np.ascontiguousarray(mask_zyx.transpose(2, 1, 0))
    return MaskIndex(mask_xyz).may_touch(loc) and bool(crop_mask_xyz(mask_xyz, loc).any())


def test_patch_location_box():
    loc = PatchLocation((20, 25, 30), 10)
    assert loc.start_zyx.tolist() == [15, 20, 25]


def test_cut_image_is_the_transposed_box():
    vol = coded_volume()
    cz, cy, cx = 20, 25, 30
    patch = cut_image(vol, PatchLocation((cz, cy, cx), 10), fill=-1.0)
    assert patch.shape == (10, 10, 10, 1) and patch.dtype == np.float32
    # patch[i, j, k] is the voxel x = cx - 5 + i, y = cy - 5 + j, z = cz - 5 + k
    for i, j, k in itertools.product(range(10), repeat=3):
        assert patch[i, j, k, 0] == 10000 * (cz - 5 + k) + 100 * (cy - 5 + j) + (cx - 5 + i)


def test_cut_image_non_cubic_content_and_sizes():
    vol = coded_volume()
    patch = cut_image(vol, PatchLocation((10, 30, 40), 14), fill=-1.0)[..., 0]
    # first axis is x: moving along it changes the value by 1, along y by 100, along z by 10000
    assert patch[1, 0, 0] - patch[0, 0, 0] == 1
    assert patch[0, 1, 0] - patch[0, 0, 0] == 100
    assert patch[0, 0, 1] - patch[0, 0, 0] == 10000
    assert patch[0, 0, 0] == 10000 * 3 + 100 * 23 + 33


@pytest.mark.parametrize("centre", [(2, 48, 59), (39, 0, 0), (0, 25, 30), (-3, 60, 70)])
def test_cut_image_near_border_equals_np_pad_with_minimum(centre):
    vol = coded_volume() + 5.0  # minimum 5, so fill is distinguishable from voxel 0
    lo = float(vol.min())
    size, h = 12, 6
    pad = 20
    padded = np.pad(vol, pad, mode="constant", constant_values=lo)
    z, y, x = (c - h + pad for c in centre)
    expected = padded[z : z + size, y : y + size, x : x + size].transpose(2, 1, 0)
    patch = cut_image(vol, PatchLocation(centre, size), fill=lo)
    np.testing.assert_array_equal(patch[..., 0], expected)
    assert (patch == lo).any()


def test_cut_image_dtype():
    vol = coded_volume()
    assert cut_image(vol, PatchLocation((5, 5, 5), 4), 0.0, dtype=np.float16).dtype == np.float16
    assert cut_image(vol, PatchLocation((5, 5, 5), 4), 0.0, dtype=np.float64).dtype == np.float64


def sphere_zyx(shape, centre, r):
    z, y, x = np.indices(shape)
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= r * r


def test_label_patches_of_every_shift_hold_the_nodule_in_the_right_block():
    shape, centre = (80, 90, 100), (40, 45, 50)
    mask = sphere_zyx(shape, centre, 0)  # a single voxel: its block is exactly predictable
    offsets = shift_offsets(8, 4, DEFAULT_DIRECTIONS)
    for _, s, loc in nodule_locations([centre], offsets, 68):
        lab = cut_label(mask, loc, 9)
        assert lab.shape == (8, 8, 8, 2) and lab.dtype == np.float32
        np.testing.assert_array_equal(lab.sum(axis=-1), 1.0)
        assert lab[..., 1].sum() == 1
        # in the patch the nodule sits at 34 - offset on each (x, y, z) axis
        block = tuple((34 - int(o)) // 9 for o in offsets[s])
        assert lab[block + (1,)] == 1.0, (offsets[s], block)


def test_label_patch_of_nodule_patch_has_positive_voxel():
    shape, centre = (30, 70, 50), (3, 60, 10)  # near three borders
    mask = sphere_zyx(shape, centre, 4)
    for _, _, loc in nodule_locations([centre], shift_offsets(8, 4, DEFAULT_DIRECTIONS), 68):
        assert cut_label(mask, loc, 9)[..., 1].max() == 1.0
        assert touches_mask(mask, loc)


def test_touches_mask():
    mask = sphere_zyx((60, 60, 60), (30, 30, 30), 3)
    assert touches_mask(mask, PatchLocation((30, 30, 30), 4))
    # box [c-5, c+5): centre 22 ends at 26 on z, the sphere starts at 27; centre 23 reaches 27
    assert not touches_mask(mask, PatchLocation((22, 30, 30), 10))
    assert touches_mask(mask, PatchLocation((23, 30, 30), 10))
    assert not touches_mask(mask, PatchLocation((200, 200, 200), 10))


def test_nodule_locations_order_and_axis_order():
    offsets = np.array([[0, 0, 0], [8, 0, 0], [0, 0, -16]])  # (x, y, z)
    locs = list(nodule_locations([(1, 2, 3), (10, 20, 30)], offsets, 68))
    assert [(n, s) for n, s, _ in locs] == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 2)]
    assert [loc.centre_zyx for _, _, loc in locs] == [
        (1, 2, 3),
        (1, 2, 11),
        (-15, 2, 3),
        (10, 20, 30),
        (10, 20, 38),
        (-6, 20, 30),
    ]
    assert all(loc.size == 68 for _, _, loc in locs)


def test_57_patches_per_nodule_are_distinct():
    locs = [
        loc.centre_zyx for _, _, loc in nodule_locations([(40, 45, 50)], shift_offsets(8, 4, DEFAULT_DIRECTIONS), 68)
    ]
    assert len(locs) == 57 and len(set(locs)) == 57


# ---------------------------------------------------------------- negatives
def test_negatives_per_scan_with_nodules():
    counts = {"a": 57, "b": 0, "c": 114}
    default = key_schema("luna16.negatives.scans")["default"]  # the reference's: scans with nodules
    assert negatives_per_scan(counts, 3, default) == {"a": 171, "b": 0, "c": 342}
    assert negatives_per_scan(counts, 3, "with_nodules") == {"a": 171, "b": 0, "c": 342}
    assert negatives_per_scan({"a": 57}, 0.5, "with_nodules") == {"a": round(28.5)}


@pytest.mark.parametrize(
    "counts, ratio",
    [({"a": 57, "b": 0, "c": 114}, 3), ({"a": 57, "b": 0}, 3), ({"a": 57, "b": 0, "c": 0, "d": 0}, 1), ({"a": 0}, 2)],
)
def test_negatives_per_scan_all(counts, ratio):
    out = negatives_per_scan(counts, ratio, "all")
    total = round(ratio * sum(counts.values()))
    assert list(out) == list(counts)
    assert sum(out.values()) == total
    assert max(out.values()) - min(out.values()) <= 1
    assert sorted(out.values(), reverse=True) == list(out.values())  # the first scans take the extra one
    assert all(v >= 0 for v in out.values())


def test_negatives_per_scan_all_known_split():
    assert negatives_per_scan({"a": 57, "b": 0}, 3, "all") == {"a": 86, "b": 85}


def test_negatives_per_scan_rejects_bad_settings():
    with pytest.raises(ValueError, match="ratio"):
        negatives_per_scan({"a": 1}, -1, "with_nodules")
    with pytest.raises(ValueError, match="with_nodules"):
        negatives_per_scan({"a": 1}, 3, "some")


def test_random_centres_within_bounds_per_axis():
    shape = (5, 200, 300)
    c = random_centres(shape, 2000, keyed_rng(0, "scan-a", "negatives"))
    assert c.shape == (2000, 3) and c.dtype.kind == "i"
    assert np.all(c >= 0) and np.all(c < np.asarray(shape))
    # every axis is drawn over its own length (an axis swap would leave z < 5 or x < 5)
    assert c[:, 0].max() == 4 and c[:, 1].max() > 150 and c[:, 2].max() > 250
    assert set(np.unique(c[:, 0]).tolist()) == set(range(5))


def test_random_centres_deterministic_for_a_keyed_rng():
    shape = (40, 50, 60)
    a = random_centres(shape, 50, keyed_rng(7, "scan-a", "negatives"))
    b = random_centres(shape, 50, keyed_rng(7, "scan-a", "negatives"))
    c = random_centres(shape, 50, keyed_rng(7, "scan-b", "negatives"))
    d = random_centres(shape, 50, keyed_rng(8, "scan-a", "negatives"))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    assert random_centres(shape, 0, keyed_rng(0)).shape == (0, 3)
