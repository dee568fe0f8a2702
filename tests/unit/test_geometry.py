"""Tests of ctpatch.core.geometry against SPEC section 1 steps 2, 4 and 5, computed independently.

Expectations come from hand calculations, from SimpleITK's own physical-point transforms and
from numpy padding; never from the functions under test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import SimpleITK as sitk

from ctpatch.core.geometry import VolumeGrid, crop, resampled_grid

# 90 degrees about z, then z flipped.  Columns are the world directions of the index axes:
# index x -> world +y, index y -> world -x, index z -> world -z.  Flattened row-major.
ROT_FLIP = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0)


def rot_grid():
    return VolumeGrid(origin=(10.0, -20.0, 30.0), spacing=(0.7, 0.8, 2.5), size=(30, 40, 12), direction=ROT_FLIP)


def sitk_image(grid: VolumeGrid) -> sitk.Image:
    img = sitk.Image([int(n) for n in grid.size], sitk.sitkInt16)
    img.SetOrigin(grid.origin)
    img.SetSpacing(grid.spacing)
    img.SetDirection(grid.direction)
    return img


# ---------------------------------------------------------------- world <-> index
def test_world_to_index_rotated_flipped_by_hand():
    g = rot_grid()
    # index (1, 2, 3): spacing * index = (0.7, 1.6, 7.5); x axis -> +y, y axis -> -x, z axis -> -z:
    # world = origin + (-1.6, +0.7, -7.5) = (8.4, -19.3, 22.5)
    np.testing.assert_allclose(g.world_to_index((8.4, -19.3, 22.5)), [1.0, 2.0, 3.0], atol=1e-12)
    np.testing.assert_allclose(g.index_to_world((1, 2, 3)), [8.4, -19.3, 22.5], atol=1e-12)
    # a fractional index: (2.5, 0.25, 1.5) -> s*i = (1.75, 0.2, 3.75) -> world offset (-0.2, 1.75, -3.75)
    np.testing.assert_allclose(g.world_to_index((9.8, -18.25, 26.25)), [2.5, 0.25, 1.5], atol=1e-12)


def test_world_to_index_identity_is_not_what_a_rotation_gives():
    """The reference's |world - origin| / spacing is wrong for this grid; ours must differ from it."""
    g = rot_grid()
    world = np.array([8.4, -19.3, 22.5])
    naive = np.abs(world - np.asarray(g.origin)) / np.asarray(g.spacing)
    assert not np.allclose(g.world_to_index(world), naive)


def test_world_to_index_matches_simpleitk():
    g = rot_grid()
    img = sitk_image(g)
    rng = np.random.default_rng(1)
    for _ in range(20):
        idx = rng.uniform(-2.0, np.asarray(g.size) + 2.0)
        world = np.asarray(img.TransformContinuousIndexToPhysicalPoint(idx.tolist()))
        expected = np.asarray(img.TransformPhysicalPointToContinuousIndex(world.tolist()))
        np.testing.assert_allclose(g.world_to_index(world), expected, atol=1e-9)
        np.testing.assert_allclose(g.index_to_world(idx), world, atol=1e-9)


def test_world_to_index_vectorised_and_inverse():
    g = rot_grid()
    rng = np.random.default_rng(2)
    idx = rng.uniform(-5, 50, size=(100, 3))
    world = g.index_to_world(idx)
    assert world.shape == (100, 3)
    np.testing.assert_allclose(g.world_to_index(world), idx, atol=1e-9)
    # distances between points are preserved up to the spacing (the direction matrix is orthonormal)
    d_idx = (idx[1:] - idx[:-1]) * np.asarray(g.spacing)
    np.testing.assert_allclose(np.linalg.norm(world[1:] - world[:-1], axis=1), np.linalg.norm(d_idx, axis=1))


def test_world_to_voxel_is_nearest_voxel():
    g = rot_grid()
    rng = np.random.default_rng(3)
    idx = rng.uniform(0, 10, size=(50, 3))
    vox = g.world_to_voxel(g.index_to_world(idx))
    assert vox.dtype.kind == "i"
    assert np.all(np.abs(vox - idx) <= 0.5 + 1e-9)


def test_contains_index():
    g = rot_grid()
    assert g.contains_index((0, 0, 0))
    assert g.contains_index((29, 39, 11))
    assert not g.contains_index((30, 0, 0))
    assert not g.contains_index((0, 0, -1))
    assert not g.contains_index((0, 40, 0))


def test_shape_zyx_and_dict_round_trip():
    g = rot_grid()
    assert g.shape_zyx == (12, 40, 30)
    assert VolumeGrid.from_dict(g.to_dict()) == g


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(origin=(0, 0), spacing=(1, 1, 1), size=(2, 2, 2)), "origin"),
        (dict(origin=(0, 0, 0), spacing=(1, 0, 1), size=(2, 2, 2)), "spacing"),
        (dict(origin=(0, 0, 0), spacing=(1, 1, 1), size=(2, 0, 2)), "size"),
        (dict(origin=(0, 0, 0), spacing=(1, 1, 1), size=(2, 2, 2), direction=(1, 0, 0)), "direction"),
        (
            dict(origin=(0, 0, 0), spacing=(1, 1, 1), size=(2, 2, 2), direction=(2, 0, 0, 0, 2, 0, 0, 0, 2)),
            "orthonormal",
        ),
    ],
)
def test_volume_grid_rejects_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        VolumeGrid(**kwargs)


# ---------------------------------------------------------------- resampled grid (SPEC 1.2)
def spec_resampled(size, spacing, target):
    """SPEC 1.2 literally: new_shape = round(shape*spacing/t); factor = new/old; new_spacing = spacing/factor."""
    size = np.asarray(size, dtype=float)
    spacing = np.asarray(spacing, dtype=float)
    new_shape = np.round(size * spacing / target)
    real_factor = new_shape / size
    return new_shape.astype(int), spacing / real_factor


def box_corners(grid: VolumeGrid) -> np.ndarray:
    """World positions of the 8 outer corners of the grid's physical box (index -0.5 .. size-0.5)."""
    size = np.asarray(grid.size, dtype=float)
    D = np.asarray(grid.direction, dtype=float).reshape(3, 3)
    out = []
    for c in itertools.product((0, 1), repeat=3):
        idx = np.where(np.asarray(c) == 1, size - 0.5, -0.5)
        out.append(np.asarray(grid.origin) + D @ (idx * np.asarray(grid.spacing)))
    return np.array(out)


GRIDS = [
    VolumeGrid((-170.0, -160.0, -300.0), (0.703125, 0.703125, 2.5), (512, 512, 121)),
    VolumeGrid((-190.5, -180.2, -340.0), (0.78, 0.78, 1.25), (512, 512, 250)),
    VolumeGrid((12.0, -3.0, 40.0), (0.6, 0.9, 1.8), (100, 80, 33), ROT_FLIP),
    VolumeGrid((0.0, 0.0, 0.0), (0.5, 0.5, 2.5), (10, 10, 4)),
]


@pytest.mark.parametrize("grid", GRIDS)
@pytest.mark.parametrize("target", [1.25, 1.0, 2.0])
def test_resampled_grid_size_and_spacing_follow_spec(grid, target):
    out = resampled_grid(grid, target)
    shape, spacing = spec_resampled(grid.size, grid.spacing, target)
    assert out.size == tuple(shape.tolist())
    np.testing.assert_allclose(out.spacing, spacing, rtol=1e-12)
    assert out.direction == grid.direction
    # the real spacing is within half an output voxel's worth of the target over the whole extent
    assert np.all(np.abs(np.asarray(out.spacing) - target) * np.asarray(out.size) <= target / 2 + 1e-9)


@pytest.mark.parametrize("grid", GRIDS)
def test_resampled_grid_is_corner_aligned(grid):
    out = resampled_grid(grid, 1.25)
    np.testing.assert_allclose(box_corners(out), box_corners(grid), atol=1e-9)


def test_resampled_grid_first_voxel_moves_by_half_the_spacing_difference():
    g = VolumeGrid((0.0, 0.0, 0.0), (0.5, 0.5, 2.5), (10, 10, 4))
    out = resampled_grid(g, 1.25)
    # x, y: 10 * 0.5 = 5 mm -> 4 voxels of 1.25; first centre at 1.25/2 - 0.5/2 = 0.375
    # z: 4 * 2.5 = 10 mm -> 8 voxels of 1.25; first centre at 1.25/2 - 2.5/2 = -0.625
    assert out.size == (4, 4, 8)
    np.testing.assert_allclose(out.origin, (0.375, 0.375, -0.625))


def test_resampled_grid_rotated_origin_moves_along_the_axes():
    g = VolumeGrid((10.0, 20.0, 30.0), (0.5, 0.5, 2.5), (10, 10, 4), ROT_FLIP)
    out = resampled_grid(g, 1.25)
    # index-space shift (0.375, 0.375, -0.625); x axis -> +y, y axis -> -x, z axis -> -z
    np.testing.assert_allclose(out.origin, (10.0 - 0.375, 20.0 + 0.375, 30.0 + 0.625))


@pytest.mark.parametrize("bad", [0.0, -1.25, float("nan")])
def test_resampled_grid_rejects_bad_target(bad):
    with pytest.raises(ValueError, match="target spacing"):
        resampled_grid(GRIDS[0], bad)


# ---------------------------------------------------------------- crop
def np_pad_crop(volume, start, size, fill, pad):
    padded = np.pad(volume, pad, mode="constant", constant_values=fill)
    return padded[tuple(slice(s + pad, s + pad + n) for s, n in zip(start, size))]


VOLUME = np.random.default_rng(5).normal(size=(7, 9, 11)).astype(np.float32)


def test_crop_inside_equals_slice():
    out = crop(VOLUME, (1, 2, 3), (4, 5, 6), fill=-9.0)
    np.testing.assert_array_equal(out, VOLUME[1:5, 2:7, 3:9])
    assert out.dtype == VOLUME.dtype


@pytest.mark.parametrize(
    "start, size",
    [
        ((-2, 0, 0), (4, 4, 4)),
        ((5, 7, 9), (4, 4, 4)),
        ((-3, -3, -3), (13, 15, 17)),
        ((6, -1, 10), (3, 3, 3)),
        ((0, 0, 0), (7, 9, 11)),
    ],
)
def test_crop_partly_outside_equals_np_pad(start, size):
    out = crop(VOLUME, start, size, fill=-9.0)
    np.testing.assert_array_equal(out, np_pad_crop(VOLUME, start, size, -9.0, pad=20))


@pytest.mark.parametrize("start", [(7, 0, 0), (-5, 0, 0), (0, 20, 0), (0, 0, -4), (-30, -30, -30)])
def test_crop_entirely_outside_is_fill(start):
    out = crop(VOLUME, start, (4, 4, 4), fill=-9.0)
    assert out.shape == (4, 4, 4)
    assert np.all(out == -9.0)
    np.testing.assert_array_equal(out, np_pad_crop(VOLUME, start, (4, 4, 4), -9.0, pad=40))


def test_crop_random_boxes_against_np_pad():
    rng = np.random.default_rng(6)
    for _ in range(200):
        size = rng.integers(1, 14, 3)
        start = rng.integers(-15, 15, 3)
        out = crop(VOLUME, start, size, fill=2.5)
        np.testing.assert_array_equal(out, np_pad_crop(VOLUME, start, size, 2.5, pad=30))


def test_crop_memmap_reads_the_box(tmp_path):
    np.save(tmp_path / "v.npy", VOLUME)
    mm = np.load(tmp_path / "v.npy", mmap_mode="r")
    out = crop(mm, (-1, 4, 8), (3, 3, 5), fill=0.0)
    np.testing.assert_array_equal(out, np_pad_crop(VOLUME, (-1, 4, 8), (3, 3, 5), 0.0, pad=10))
    assert isinstance(out, np.ndarray) and not isinstance(out, np.memmap)


def test_crop_rejects_wrong_start_and_size():
    with pytest.raises(ValueError, match="start with 3 values"):
        crop(VOLUME, (0, 0), (2, 2, 2), fill=0)
    with pytest.raises(ValueError, match="positive crop size"):
        crop(VOLUME, (0, 0, 0), (2, 0, 2), fill=0)
    with pytest.raises(ValueError, match="size with 1 or 3 values"):
        crop(VOLUME, (0, 0, 0), (2, 2), fill=0)
