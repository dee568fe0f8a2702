"""Tests of ctpatch.core.augment (SPEC section 2 steps 2-6) against independent computations."""

from __future__ import annotations

import numpy as np
import pytest
from paths import SHARED_LDCT

from ctpatch.core.augment import (
    apply_rot_flip,
    area_resize,
    area_weights,
    box_blur,
    choose_share,
    dose_blend,
    downscale_copies,
    draw_blend_factor,
    draw_rot_flip,
    passes_air_threshold,
    rot_flip,
    white_noise,
)
from ctpatch.core.rng import keyed_rng

# --- downscaling -------------------------------------------------------------------------


def test_half_size_equals_2x2_block_mean():
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 4000, size=(12, 18))
    blocks = image.reshape(6, 2, 9, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(area_resize(image, 0.5), blocks, rtol=1e-6)


def test_one_third_size_equals_3x3_block_mean():
    image = np.arange(81.0).reshape(9, 9)
    want = np.array([[image[3 * i : 3 * i + 3, 3 * j : 3 * j + 3].mean() for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(area_resize(image, 1 / 3), want, rtol=1e-6)


def test_fractional_overlap_weights_by_hand():
    # 5 -> 2 pixels: output 0 covers [0, 2.5): pixels 0, 1 fully and half of pixel 2.
    w = area_weights(5, 2)
    np.testing.assert_allclose(w[0], np.array([1, 1, 0.5, 0, 0]) / 2.5)
    np.testing.assert_allclose(w[1], np.array([0, 0, 0.5, 1, 1]) / 2.5)


def test_constant_image_stays_constant():
    out = area_resize(np.full((512, 512), 1234.0), 0.6)
    np.testing.assert_allclose(out, 1234.0, rtol=1e-6)


def test_mean_preserved_for_exact_division():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, size=(10, 15))  # 0.6 -> (6, 9) exactly
    out = area_resize(image, 0.6)
    assert out.shape == (6, 9)
    assert float(out.mean()) == pytest.approx(float(image.mean()), rel=1e-6)


def test_output_shape_is_truncated_shape_times_factor():
    # SPEC 2b: the reference sizes its copies int(w * factor): 409.6 -> 409, 307.2 -> 307
    image = np.zeros((512, 512), np.float32)
    assert area_resize(image, 0.8).shape == (409, 409)
    assert area_resize(image, 0.6).shape == (307, 307)
    assert area_resize(image, 0.8).dtype == np.float32
    assert area_resize(np.zeros((99, 7)), 0.5).shape == (49, 3)  # 49.5, 3.5 truncated


def _area_by_supersampling(column: np.ndarray, n_out: int) -> np.ndarray:
    """Area resize of one axis, independently: repeat each of the n_in pixels n_out times, then
    average blocks of n_in (every output pixel covers exactly n_in / n_out input pixels)."""
    n_in = column.shape[0]
    fine = np.repeat(column.astype(np.float64), n_out, axis=0)
    return fine.reshape(n_out, n_in, *column.shape[1:]).mean(axis=1)


def test_512_to_409_equals_supersampled_box_mean():
    rng = np.random.default_rng(3)
    image = rng.uniform(-1000, 3000, size=(512, 5))
    got = area_resize(image, 0.8)  # (409, 4)
    assert got.shape == (409, 4)
    want = _area_by_supersampling(image, 409)  # rows 512 -> 409
    want = _area_by_supersampling(want.T, 4).T  # cols 5 -> 4
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-3)


@pytest.mark.parametrize("factor", [0.0, -0.5, 1.5])
def test_factor_outside_unit_interval_rejected(factor):
    with pytest.raises(ValueError, match="factor"):
        area_resize(np.zeros((10, 10)), factor)


def test_factor_leaving_no_pixel_rejected():
    with pytest.raises(ValueError, match="at least one pixel"):
        area_resize(np.zeros((3, 3)), 0.1)


def test_downscale_copies_lists_original_and_copies():
    image = np.ones((100, 50))
    copies = downscale_copies(image, (0.8, 0.6))  # SPEC 2 step 2
    assert [f for f, _ in copies] == [1.0, 0.8, 0.6]
    assert copies[0][1] is image
    assert [a.shape for _, a in copies] == [(100, 50), (80, 40), (60, 30)]


# --- air threshold -----------------------------------------------------------------------


def test_air_threshold_matches_hand_count_on_real_slice():
    path = SHARED_LDCT / "L096" / "full_3mm_sharp_sorted" / "000061.IMA"
    if not path.exists():
        pytest.skip(f"real LDCT data not found at {path}")
    import pydicom

    image = pydicom.dcmread(path).pixel_array.astype(np.float32)
    decisions = []
    for r in range(0, 512 - 55 + 1, 47):
        for c in range(0, 512 - 55 + 1, 47):
            patch = image[r : r + 55, c : c + 55]
            values = patch.ravel().tolist()
            above = 0
            total = 0.0
            for v in values:
                if v > 200:
                    above += 1
                total += v
            keep = above / len(values) > 0.10 and total / len(values) > 100
            assert passes_air_threshold(patch, 200.0, 0.10, 100.0) == keep, (r, c)
            decisions.append(keep)
    # the slice has both air (corners) and body, so both outcomes occur
    assert any(decisions) and not all(decisions)


def test_air_threshold_needs_strictly_more_than_fraction():
    patch = np.zeros((10, 10))
    patch.ravel()[:10] = 5000.0  # exactly 10 % above 200, mean 500
    assert not passes_air_threshold(patch, 200.0, 0.10, 100.0)
    patch.ravel()[10] = 5000.0  # 11 %
    assert passes_air_threshold(patch, 200.0, 0.10, 100.0)


def test_air_threshold_needs_mean_above_limit():
    patch = np.full((10, 10), -500.0)
    patch.ravel()[:50] = 300.0  # 50 % above 200 but mean -100
    assert not passes_air_threshold(patch, 200.0, 0.10, 100.0)
    assert passes_air_threshold(patch, 200.0, 0.10, -200.0)


# --- rotation / flip ---------------------------------------------------------------------


def _pair(seed=2, shape=(8, 8)):
    rng = np.random.default_rng(seed)
    return rng.normal(size=shape), rng.normal(size=shape)


def test_rot_flip_applies_identical_transform_to_input_and_target():
    inp, tgt = _pair()
    for seed in range(20):
        for a, b, info in rot_flip(inp, tgt, keyed_rng(0, "rot", seed)):
            # the transform is linear: transform(inp - tgt) == transform(inp) - transform(tgt)
            if "rot_k" in info:
                np.testing.assert_array_equal(np.rot90(inp - tgt, info["rot_k"]), a - b)
            else:
                axis = 1 if info["flip"] == "lr" else 0
                np.testing.assert_array_equal(np.flip(inp - tgt, axis), a - b)


def test_inverse_rotation_and_second_flip_restore_the_pair():
    inp, tgt = _pair(shape=(6, 6))
    (ra, rb, rinfo), (fa, fb, finfo) = rot_flip(inp, tgt, keyed_rng(0, "restore"))
    k = rinfo["rot_k"]
    np.testing.assert_array_equal(np.rot90(ra, -k), inp)
    np.testing.assert_array_equal(np.rot90(rb, -k), tgt)
    # a flip is its own inverse; check by index arithmetic, not by flipping again
    n = inp.shape[0]
    for i in range(n):
        for j in range(n):
            src = (i, n - 1 - j) if finfo["flip"] == "lr" else (n - 1 - i, j)
            assert fa[i, j] == inp[src] and fb[i, j] == tgt[src]


def test_rotation_by_index_arithmetic():
    inp = np.arange(12.0).reshape(3, 4)
    tgt = -inp
    rows, cols = inp.shape
    seen = set()
    for seed in range(30):
        (a, b, info), _ = rot_flip(inp, tgt, keyed_rng(0, "index", seed))
        k = info["rot_k"]
        seen.add(k)
        assert a.shape == ((cols, rows) if k % 2 else (rows, cols))
        for i in range(a.shape[0]):
            for j in range(a.shape[1]):
                if k == 1:  # counter-clockwise: out[i, j] = in[j, cols - 1 - i]
                    src = (j, cols - 1 - i)
                elif k == 2:
                    src = (rows - 1 - i, cols - 1 - j)
                else:
                    src = (rows - 1 - j, i)
                assert a[i, j] == inp[src] and b[i, j] == tgt[src]
    assert seen == {1, 2, 3}


def test_rot_flip_draws_every_option_and_is_reproducible():
    inp, tgt = _pair()
    ks, flips = set(), set()
    for seed in range(60):
        out1 = rot_flip(inp, tgt, keyed_rng(5, "slice", seed))
        out2 = rot_flip(inp, tgt, keyed_rng(5, "slice", seed))
        assert [o[2] for o in out1] == [o[2] for o in out2]
        ks.add(out1[0][2]["rot_k"])
        flips.add(out1[1][2]["flip"])
    assert ks == {1, 2, 3}
    assert flips == {"lr", "ud"}


def test_rot_flip_is_draw_then_apply():
    inp, tgt = _pair()
    for seed in range(10):
        k, flip = draw_rot_flip(keyed_rng(1, "d", seed))
        together = rot_flip(inp, tgt, keyed_rng(1, "d", seed))
        apart = apply_rot_flip(inp, tgt, k, flip)
        assert [o[2] for o in together] == [{"rot_k": k}, {"flip": flip}]
        for (a1, b1, _), (a2, b2, _) in zip(together, apart):
            np.testing.assert_array_equal(a1, a2)
            np.testing.assert_array_equal(b1, b2)


def test_apply_rot_flip_rejects_unknown_flip():
    with pytest.raises(ValueError, match="flip"):
        apply_rot_flip(np.zeros((2, 2)), np.zeros((2, 2)), 1, "diag")


def test_rot_flip_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        rot_flip(np.zeros((4, 4)), np.zeros((4, 5)), np.random.default_rng(0))


# --- dose blending -----------------------------------------------------------------------


def test_blend_formula_without_shift():
    inp = np.array([[100.0, 300.0], [500.0, 700.0]])
    tgt = np.array([[120.0, 280.0], [520.0, 650.0]])
    f = 0.75
    new_inp, new_tgt = dose_blend(inp, tgt, f)
    np.testing.assert_allclose(new_inp, tgt + f * (inp - tgt), rtol=1e-6)
    np.testing.assert_array_equal(new_tgt, tgt)
    a, _ = dose_blend(inp, tgt, 1.0)
    np.testing.assert_allclose(a, inp)
    a, _ = dose_blend(inp, tgt, 0.0)
    np.testing.assert_allclose(a, tgt)


def test_blend_shifts_input_and_target_by_the_same_amount():
    inp = np.array([[-3.0, 1.0], [2.0, 0.0]])
    tgt = np.array([[1.0, 1.0], [1.0, 1.0]])
    f = 1.2
    raw = tgt + f * (inp - tgt)  # min: 1 + 1.2 * -4 = -3.8
    shift = -raw.min()
    new_inp, new_tgt = dose_blend(inp, tgt, f)
    assert float(new_inp.min()) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(new_inp, raw + 3.8, rtol=1e-6)
    np.testing.assert_allclose(new_tgt, tgt + shift, rtol=1e-6)
    # the difference is unchanged by the shift: identical for input and target
    np.testing.assert_allclose(new_inp - new_tgt, f * (inp - tgt), rtol=1e-6, atol=1e-6)


def test_blend_factor_draws_lie_in_range():
    draws = [draw_blend_factor(keyed_rng(0, "blend", i), 0.5, 1.2) for i in range(200)]
    assert min(draws) >= 0.5 and max(draws) < 1.2
    assert draw_blend_factor(keyed_rng(0, "x"), 0.5, 1.2) == draw_blend_factor(keyed_rng(0, "x"), 0.5, 1.2)


def test_blend_factor_rejects_reversed_range():
    with pytest.raises(ValueError, match="low <= high"):
        draw_blend_factor(np.random.default_rng(0), low=1.2, high=0.5)


def test_blend_rejects_non_finite_factor():
    with pytest.raises(ValueError, match="blend factor"):
        dose_blend(np.zeros((2, 2)), np.zeros((2, 2)), float("nan"))


# --- blur, noise, shares -----------------------------------------------------------------


def test_box_blur_equals_explicit_3x3_mean_with_edge_repeat():
    rng = np.random.default_rng(4)
    image = rng.uniform(0, 100, size=(7, 9))
    padded = np.pad(image, 1, mode="edge")
    want = sum(padded[1 + dr : 1 + dr + 7, 1 + dc : 1 + dc + 9] for dr in (-1, 0, 1) for dc in (-1, 0, 1)) / 9.0
    got = box_blur(image, 3)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_box_blur_rejects_even_size():
    with pytest.raises(ValueError, match="odd box size"):
        box_blur(np.zeros((5, 5)), size=4)


def test_white_noise_norm_is_one_percent_of_image_norm():
    rng = np.random.default_rng(6)
    image = rng.uniform(0, 4000, size=(55, 55))
    out = white_noise(image, keyed_rng(0, "noise"), 0.01)
    noise = out.astype(np.float64) - image
    # float32 rounding of values near 4000 contributes ~1e-4 per pixel, far below the noise
    assert np.sqrt((noise**2).sum()) == pytest.approx(0.01 * np.sqrt((image**2).sum()), rel=1e-3)
    assert abs(float(noise.mean())) < 0.2 * float(noise.std())  # zero-mean noise


def test_white_noise_is_reproducible_and_zero_image_unchanged():
    image = np.ones((8, 8))
    a = white_noise(image, keyed_rng(1, "n"), 0.01)
    b = white_noise(image, keyed_rng(1, "n"), 0.01)
    np.testing.assert_array_equal(a, b)
    assert np.all(white_noise(np.zeros((4, 4)), keyed_rng(1, "n"), 0.01) == 0)


def test_white_noise_rejects_negative_scale():
    with pytest.raises(ValueError, match="scale"):
        white_noise(np.ones((2, 2)), np.random.default_rng(0), scale=-0.1)


@pytest.mark.parametrize("n, share, k", [(10, 0.3, 3), (7, 0.5, 4), (5, 0.0, 0), (5, 1.0, 5), (0, 0.5, 0)])
def test_choose_share_picks_rounded_count(n, share, k):
    mask = choose_share(keyed_rng(0, "share", n), n, share)
    assert mask.dtype == bool and mask.shape == (n,)
    assert int(mask.sum()) == k


def test_choose_share_rejects_share_above_one():
    with pytest.raises(ValueError, match="share"):
        choose_share(np.random.default_rng(0), 10, 1.5)


def test_air_threshold_counts_against_another_pixel_count_when_asked():
    """The reference's super-resolution count: more than int(fraction x count_of) pixels, not of the patch's."""
    patch = np.zeros((55, 55))
    patch.flat[:33] = 1000.0  # 33 pixels above 200; mean 33000 / 3025 > 10
    assert not passes_air_threshold(patch, 200.0, 0.1, 10.0)  # 33 is not more than 302.5
    assert passes_air_threshold(patch, 200.0, 0.1, 10.0, count_of=18 * 18)  # 33 > int(32.4) = 32
    patch.flat[32] = 0.0
    assert not passes_air_threshold(patch, 200.0, 0.1, 10.0, count_of=18 * 18)  # 32 is not more than 32
