"""Tests of ctpatch.core.labels against SPEC section 1 steps 4 and 7, checked by brute-force loops."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ctpatch.core.labels import block_max_pool, label_patch, nodule_radius_voxels, one_hot, paint_sphere


def brute_sphere(shape, centre, r):
    """Every voxel v of ``shape`` with sum (v - centre)^2 <= r^2, by an explicit loop."""
    out = np.zeros(shape, dtype=bool)
    for v in itertools.product(*(range(n) for n in shape)):
        if sum((a - c) ** 2 for a, c in zip(v, centre)) <= r * r:
            out[v] = True
    return out


def brute_pool(patch, block):
    """Max of each block x block x block cube, the partial edge cube padded with 0."""
    out_shape = [-(-n // block) for n in patch.shape]
    out = np.zeros(out_shape, dtype=patch.dtype)
    for idx in itertools.product(*(range(n) for n in out_shape)):
        cube = np.zeros((block,) * patch.ndim, dtype=patch.dtype)
        part = patch[tuple(slice(i * block, (i + 1) * block) for i in idx)]
        cube[tuple(slice(0, n) for n in part.shape)] = part
        out[idx] = cube.max()
    return out


# ---------------------------------------------------------------- radius
@pytest.mark.parametrize(
    "diameter, spacing, expected",
    [
        (10.0, 1.25, 4),
        (9.9, 1.25, 3),
        (2.4, 1.25, 0),
        (2.5, 1.25, 1),
        (25.0, 0.7, 17),
        (3.0, 0.703125, 2),
        (32.27, 1.25, 12),
    ],
)
def test_radius_formula(diameter, spacing, expected):
    # SPEC 1.4: r = int((diameter_mm / new_spacing_y) // 2); expected values worked out by hand
    assert nodule_radius_voxels(diameter, spacing) == expected
    assert isinstance(nodule_radius_voxels(diameter, spacing), int)


@pytest.mark.parametrize("diameter, spacing", [(-1.0, 1.25), (float("nan"), 1.25), (5.0, 0.0), (5.0, -1.0)])
def test_radius_rejects_bad_values(diameter, spacing):
    with pytest.raises(ValueError):
        nodule_radius_voxels(diameter, spacing)


# ---------------------------------------------------------------- spheres
@pytest.mark.parametrize("r", [0, 1, 2, 3, 4, 5])
def test_sphere_inside_matches_brute_force(r):
    shape = (13, 14, 15)
    mask = np.zeros(shape, dtype=bool)
    paint_sphere(mask, (6, 7, 7), r)
    expected = brute_sphere(shape, (6, 7, 7), r)
    assert mask.sum() == expected.sum()
    np.testing.assert_array_equal(mask, expected)


def test_sphere_voxel_counts_known_values():
    # lattice points in a ball of radius r: 1, 7, 33, 123, 257 for r = 0..4
    for r, n in zip(range(5), (1, 7, 33, 123, 257)):
        mask = np.zeros((11, 11, 11), dtype=bool)
        paint_sphere(mask, (5, 5, 5), r)
        assert int(mask.sum()) == n


@pytest.mark.parametrize("centre", [(0, 2, 14), (9, 11, 0), (1, 0, 7), (-2, 5, 5), (12, 5, 5), (-1, -1, -1)])
def test_sphere_clipped_at_border_matches_brute_force(centre):
    shape = (10, 12, 15)
    mask = np.zeros(shape, dtype=bool)
    paint_sphere(mask, centre, 4)
    np.testing.assert_array_equal(mask, brute_sphere(shape, centre, 4))


def test_sphere_entirely_outside_paints_nothing():
    mask = np.zeros((6, 6, 6), dtype=bool)
    paint_sphere(mask, (-10, 3, 3), 4)
    paint_sphere(mask, (3, 3, 20), 4)
    assert not mask.any()


def test_sphere_keeps_what_was_painted_before():
    mask = np.zeros((8, 8, 8), dtype=bool)
    mask[0, 0, 0] = True
    paint_sphere(mask, (5, 5, 5), 1)
    assert mask[0, 0, 0] and mask.sum() == 8


def test_sphere_union_non_cubic_matches_brute_force():
    shape = (9, 16, 21)
    centres = [(4, 4, 5), (4, 7, 7), (8, 15, 20)]
    radii = [3, 2, 4]
    expected = np.zeros(shape, dtype=bool)
    for c, r in zip(centres, radii):
        expected |= brute_sphere(shape, c, r)
    mask = np.zeros(shape, dtype=bool)
    for c, r in zip(centres, radii):
        paint_sphere(mask, c, r)  # the union, as the label volume paints its nodules
    np.testing.assert_array_equal(mask, expected)


def test_sphere_in_2d():
    mask = np.zeros((7, 9), dtype=bool)
    paint_sphere(mask, (3, 4), 2)
    np.testing.assert_array_equal(mask, brute_sphere((7, 9), (3, 4), 2))


def test_sphere_rejects_bad_arguments():
    with pytest.raises(ValueError, match="centre with 3"):
        paint_sphere(np.zeros((4, 4, 4), bool), (1, 1), 1)
    with pytest.raises(ValueError, match="non-negative radius"):
        paint_sphere(np.zeros((4, 4, 4), bool), (1, 1, 1), -1)


# ---------------------------------------------------------------- pooling
def test_block_max_pool_68_to_8_matches_brute_force():
    rng = np.random.default_rng(0)
    patch = rng.random((68, 68, 68)) > 0.9995  # sparse, so most blocks are 0 and some are 1
    out = block_max_pool(patch, 9)
    assert out.shape == (8, 8, 8)
    np.testing.assert_array_equal(out, brute_pool(patch, 9))
    assert 0 < out.sum() < out.size


@pytest.mark.parametrize("voxel, block", [((67, 67, 67), (7, 7, 7)), ((63, 0, 62), (7, 0, 6)), ((0, 9, 8), (0, 1, 0))])
def test_block_max_pool_single_voxel_lands_in_its_block(voxel, block):
    patch = np.zeros((68, 68, 68), dtype=np.uint8)
    patch[voxel] = 1
    out = block_max_pool(patch, 9)
    assert out.sum() == 1 and out[block] == 1


def test_block_max_pool_edge_block_is_padded_with_zero():
    patch = -np.ones((68, 68, 68), dtype=np.float32) - np.random.default_rng(1).random((68, 68, 68)).astype(np.float32)
    out = block_max_pool(patch, 9)
    expected = brute_pool(patch, 9)
    np.testing.assert_array_equal(out, expected)
    # full blocks keep their negative maxima; every block touching the 5-voxel edge sees the zero padding
    assert np.all(out[:7, :7, :7] < 0)
    assert np.all(out[7, :, :] == 0) and np.all(out[:, 7, :] == 0) and np.all(out[:, :, 7] == 0)


def test_block_max_pool_other_sizes():
    rng = np.random.default_rng(2)
    patch = rng.integers(0, 100, (20, 11, 7))
    np.testing.assert_array_equal(block_max_pool(patch, 4), brute_pool(patch, 4))
    np.testing.assert_array_equal(block_max_pool(patch, 1), patch)


def test_block_max_pool_rejects_bad_block():
    with pytest.raises(ValueError, match="block"):
        block_max_pool(np.zeros((4, 4, 4)), 0)


# ---------------------------------------------------------------- one-hot and label patch
def test_one_hot():
    lab = np.array([[0, 1], [1, 0]])
    out = one_hot(lab)
    assert out.shape == (2, 2, 2) and out.dtype == np.float32
    for i, j in itertools.product(range(2), range(2)):
        assert out[i, j].tolist() == ([1.0, 0.0] if lab[i, j] == 0 else [0.0, 1.0])
    assert one_hot(np.array([True, False])).tolist() == [[0.0, 1.0], [1.0, 0.0]]
    assert one_hot(np.array([2, 0]), 3).tolist() == [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]


@pytest.mark.parametrize("bad", [[2], [-1], [0, 3]])
def test_one_hot_rejects_out_of_range(bad):
    with pytest.raises(ValueError, match="labels in"):
        one_hot(np.array(bad))


def test_label_patch_of_a_sphere():
    mask = brute_sphere((68, 68, 68), (30, 40, 50), 5)
    out = label_patch(mask, 9)  # SPEC 1.7: 9x9x9 blocks
    assert out.shape == (8, 8, 8, 2) and out.dtype == np.float32
    pooled = brute_pool(mask.astype(np.uint8), 9)
    np.testing.assert_array_equal(out[..., 1], pooled)
    np.testing.assert_array_equal(out[..., 0], 1 - pooled)
    # the sphere spans z 25..35 -> blocks 2..3, y 35..45 -> 3..5, x 45..55 -> 5..6 (axis order kept)
    hit = np.argwhere(out[..., 1] == 1)
    assert hit.min(axis=0).tolist() == [2, 3, 5] and hit.max(axis=0).tolist() == [3, 5, 6]
