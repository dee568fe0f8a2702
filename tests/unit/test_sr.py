"""Tests of ctpatch.core.sr (SPEC section 2c) against computations written out here."""

from __future__ import annotations

import numpy as np
import pytest

from ctpatch.core.grid import grid_corners
from ctpatch.core.sr import SR_BASE, block_mean, modcrop, sr_dose_blend, sr_sizes

# SPEC 2c: HR base per code (padding as in plain mode, p54 -> 12)
SPEC_BASE = {"p96": 84, "p75": 64, "p64": 60, "p55": 47, "p54": 42, "p42": 36, "p32": 28, "p24": 20, "p12": 8}
SPEC_PAD = {"p96": 12, "p75": 11, "p64": 4, "p55": 8, "p54": 12, "p42": 6, "p32": 4, "p24": 4, "p12": 4}


def spec_starts(length, edge, padding):
    stride = edge - padding
    starts, x = [0], stride
    while x < length:
        starts.append(x - padding)
        x += stride
    return starts


def loop_block_mean(img, s):
    rows, cols = img.shape[0] // s, img.shape[1] // s
    out = np.zeros((rows, cols))
    for i in range(rows):
        for j in range(cols):
            out[i, j] = sum(img[i * s + a, j * s + b] for a in range(s) for b in range(s)) / (s * s)
    return out


def test_table_is_the_spec_table():
    assert {k: v[0] for k, v in SR_BASE.items()} == SPEC_BASE
    assert {k: v[1] for k, v in SR_BASE.items()} == SPEC_PAD


@pytest.mark.parametrize("code", sorted(SPEC_BASE))
@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_sizes_follow_int_of_hr_over_scale(code, scale):
    hr, pad = SPEC_BASE[code] + SPEC_PAD[code], SPEC_PAD[code]
    lr = hr // scale
    if lr - pad < 1:
        with pytest.raises(ValueError, match="LR stride"):
            sr_sizes(hr, pad, scale, "reference")
        return
    assert sr_sizes(hr, pad, scale, "reference") == (lr, hr)
    assert sr_sizes(hr, pad, scale, "exact") == (lr, lr * scale)


def test_scale_one_gives_the_plain_edges():
    from ctpatch.core.grid import SIZE_CODES

    for code, (edge, pad) in SIZE_CODES.items():
        assert SPEC_BASE[code] + SPEC_PAD[code] == edge and SPEC_PAD[code] == pad
        assert sr_sizes(edge, pad, 1, "reference") == (edge, edge)


def test_modcrop_and_block_mean_by_loops():
    rng = np.random.default_rng(0)
    img = rng.uniform(-1000, 3000, size=(23, 17))
    cropped = modcrop(img, 3)
    assert cropped.shape == (21, 15) and np.shares_memory(cropped, img)
    np.testing.assert_array_equal(cropped, img[:21, :15])
    np.testing.assert_allclose(block_mean(cropped, 3), loop_block_mean(cropped, 3), rtol=1e-6, atol=1e-3)
    with pytest.raises(ValueError, match="multiples of 3"):
        block_mean(img, 3)


def test_grid_and_footprint_relation():
    """Every HR patch region is its LR patch region x scale: the block mean of the HR footprint is the LR patch."""
    rng = np.random.default_rng(1)
    hr_img = modcrop(rng.uniform(0, 4000, size=(200, 187)), 3)  # 198 x 186
    lr_img = loop_block_mean(hr_img, 3)  # 66 x 62
    lr_edge, hr_edge = sr_sizes(55, 8, 3, "reference")  # 18, 55
    lr = grid_corners(lr_img.shape, lr_edge, 8, "fill")  # the grid on the LR input
    hr = lr * 3  # the extraction's HR corner of each LR corner
    want = [(r, c) for r in spec_starts(66, 18, 8) for c in spec_starts(62, 18, 8)]
    assert [tuple(v) for v in lr] == want
    inside = 0
    for (r, c), (R, C) in zip(lr, hr):
        if r + lr_edge <= lr_img.shape[0] and c + lr_edge <= lr_img.shape[1]:
            inside += 1
            foot = hr_img[R : R + 3 * lr_edge, C : C + 3 * lr_edge]
            np.testing.assert_allclose(loop_block_mean(foot, 3), lr_img[r : r + lr_edge, c : c + lr_edge], rtol=1e-9)
            assert hr_edge == 3 * lr_edge + 1  # the reference's p55 target: one pixel past the footprint
    assert inside > 4


def test_sr_dose_blend_formula():
    rng = np.random.default_rng(2)
    hr = rng.uniform(0, 100, size=(7, 7))
    lr = rng.uniform(0, 100, size=(2, 2))
    t = loop_block_mean(hr[:6, :6], 3)
    a, b = sr_dose_blend(lr, hr, 0.8, 3)
    np.testing.assert_allclose(a, t + 0.8 * (lr - t), rtol=1e-6)
    np.testing.assert_allclose(b, hr, rtol=1e-6)
    # extrapolation below zero: both shifted by the same amount
    lr2 = t - 200.0
    a, b = sr_dose_blend(lr2, hr, 1.2, 3)
    new = t + 1.2 * (lr2 - t)
    np.testing.assert_allclose(a, new - new.min(), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(b, hr - new.min(), rtol=1e-6)
