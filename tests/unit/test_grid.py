"""Tests of ctpatch.core.grid against SPEC section 2 ("Patch grid"), computed independently."""

from __future__ import annotations

import numpy as np
import pytest
from paths import SHARED_LDCT

from ctpatch.core.grid import SIZE_CODES, cut_patch, grid_corners, patch_starts, resolve_size


def spec_starts(length, edge, padding):
    """SPEC section 2, written out literally: 0, then x - padding for x = stride, ... < length."""
    stride = edge - padding
    starts = [0]
    x = stride
    while x < length:
        starts.append(x - padding)
        x = x + stride
    return starts


def test_size_codes_match_spec_table():
    assert SIZE_CODES == {
        "p96": (96, 12),
        "p75": (75, 11),
        "p64": (64, 4),
        "p55": (55, 8),
        "p42": (42, 6),
        "p32": (32, 4),
        "p24": (24, 4),
        "p12": (12, 4),
    }


def test_resolve_size_code_and_free_values():
    assert resolve_size("p75") == (75, 11)
    assert resolve_size(None, edge=50, padding=0) == (50, 0)


def test_resolve_size_rejects_unknown_code():
    with pytest.raises(ValueError, match="p99"):
        resolve_size("p99")


def test_resolve_size_rejects_code_together_with_edge():
    with pytest.raises(ValueError, match="either a size code"):
        resolve_size("p55", edge=55, padding=8)


def test_resolve_size_requires_both_free_values():
    with pytest.raises(ValueError, match="both edge and padding"):
        resolve_size(None, edge=55)


def test_edge_must_exceed_padding():
    with pytest.raises(ValueError, match=r"edge > padding, got edge=8, padding=8"):
        resolve_size(None, edge=8, padding=8)
    with pytest.raises(ValueError, match="edge > padding"):
        patch_starts(100, 4, 6, "fill")


def test_p55_on_512_starts_and_corners_follow_spec():
    edge, padding = SIZE_CODES["p55"]
    expected = spec_starts(512, edge, padding)
    # 47 = stride; x runs 47, 94, ..., 470 -> 1 + 10 starts
    assert len(expected) == 11
    assert patch_starts(512, edge, padding, "fill").tolist() == expected

    corners = grid_corners((512, 512), edge, padding, "fill")
    assert corners.shape == (len(expected) ** 2, 2)
    want = [[r, c] for r in expected for c in expected]  # row-major: column varies fastest
    assert corners.tolist() == want


@pytest.mark.parametrize("code", sorted(SIZE_CODES))
@pytest.mark.parametrize("length", [512, 410, 307, 55, 7])
def test_every_code_follows_spec_rule(code, length):
    edge, padding = SIZE_CODES[code]
    assert patch_starts(length, edge, padding, "fill").tolist() == spec_starts(length, edge, padding)


def test_non_square_shape_uses_each_axis_length():
    corners = grid_corners((100, 200), 40, 10, "fill")
    rows = spec_starts(100, 40, 10)
    cols = spec_starts(200, 40, 10)
    assert corners.tolist() == [[r, c] for r in rows for c in cols]


@pytest.mark.parametrize("code", sorted(SIZE_CODES))
def test_shift_keeps_patches_inside_and_covers_axis(code):
    edge, padding = SIZE_CODES[code]
    length = 512
    starts = patch_starts(length, edge, padding, "shift")
    assert np.all(np.diff(starts) > 0)
    assert np.all(starts + edge <= length)
    assert starts[-1] == length - edge
    covered = np.zeros(length, bool)
    for s in starts:
        covered[s : s + edge] = True
    assert covered.all()
    # starts that fit are the SPEC ones, unchanged
    fitting = [s for s in spec_starts(length, edge, padding) if s + edge <= length]
    assert [s for s in starts.tolist() if s in fitting] == fitting


def test_fill_covers_axis_including_last_pixel():
    edge, padding = SIZE_CODES["p55"]
    covered = np.zeros(512, bool)
    for s in patch_starts(512, edge, padding, "fill"):
        covered[s : min(s + edge, 512)] = True
    assert covered.all()


def test_image_smaller_than_patch():
    assert patch_starts(30, 55, 8, "fill").tolist() == [0]
    assert patch_starts(30, 55, 8, "shift").tolist() == [0]


def test_unknown_last_mode_rejected():
    with pytest.raises(ValueError, match="last"):
        patch_starts(512, 55, 8, "wrap")


def test_non_positive_length_rejected():
    with pytest.raises(ValueError, match="length"):
        patch_starts(0, 55, 8, "fill")


def _slice_image():
    path = SHARED_LDCT / "L096" / "full_3mm_sharp_sorted" / "000061.IMA"
    if not path.exists():
        pytest.skip(f"real LDCT data not found at {path}")
    import pydicom

    return pydicom.dcmread(path).pixel_array


def test_interior_patches_equal_numpy_slices_of_real_slice():
    image = _slice_image()
    edge, padding = SIZE_CODES["p55"]
    fill = image.min()
    n_interior = 0
    for r, c in grid_corners(image.shape, edge, padding, "fill"):
        patch = cut_patch(image, (r, c), edge, fill)
        assert patch.dtype == image.dtype and patch.shape == (edge, edge)
        if r + edge <= image.shape[0] and c + edge <= image.shape[1]:
            np.testing.assert_array_equal(patch, image[r : r + edge, c : c + edge])
            n_interior += 1
    assert n_interior == 10 * 10


def test_border_patch_keeps_last_pixel_and_fills_with_minimum():
    rng = np.random.default_rng(3)
    image = rng.integers(5, 4000, size=(512, 512)).astype(np.uint16)
    edge = 55
    r = c = 462  # last p55 start; window runs to 517
    patch = cut_patch(image, (r, c), edge, fill=image.min())
    inside = 512 - 462
    np.testing.assert_array_equal(patch[:inside, :inside], image[462:, 462:])
    assert patch[inside - 1, inside - 1] == image[-1, -1]
    assert np.all(patch[inside:, :] == image.min())
    assert np.all(patch[:, inside:] == image.min())


def test_cut_patch_returns_a_copy():
    image = np.zeros((10, 10), np.float32)
    patch = cut_patch(image, (0, 0), 4, fill=0.0)
    patch[0, 0] = 1.0
    assert image[0, 0] == 0.0


def test_cut_patch_rejects_corner_outside_image():
    with pytest.raises(ValueError, match="corner"):
        cut_patch(np.zeros((10, 10)), (10, 0), 4, fill=0.0)
    with pytest.raises(ValueError, match="corner"):
        cut_patch(np.zeros((10, 10)), (-1, 0), 4, fill=0.0)


def test_cut_patch_rejects_fill_not_representable():
    with pytest.raises(ValueError, match="fill"):
        cut_patch(np.zeros((10, 10), np.uint16), (0, 0), 4, fill=-1)
    with pytest.raises(ValueError, match="fill"):
        cut_patch(np.zeros((10, 10), np.int16), (0, 0), 4, fill=0.5)


def test_cut_patch_rejects_non_2d_image():
    with pytest.raises(ValueError, match="2D image"):
        cut_patch(np.zeros((2, 10, 10)), (0, 0), 4, fill=0.0)
