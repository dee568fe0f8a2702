"""Tests of ctpatch.core.normalize against the formulas of SPEC sections 1 and 2, written out here."""

from __future__ import annotations

import numpy as np
import pytest
from paths import SHARED_LDCT

from ctpatch.core.normalize import NORMALIZATIONS, hu_window, normalize_pair


def _mm(x):
    return float(np.min(x)), float(np.max(x))


def spec_formula(method, ld, fd):
    """SPEC section 2 step 1, per method, in float64; max_val shifts only a negative minimum."""
    ld = ld.astype(np.float64)
    fd = fd.astype(np.float64)
    if method == "none":
        return ld, fd
    if method == "unity_independent":
        return [(x - x.min()) / (x.max() - x.min()) for x in (ld, fd)]
    if method == "unity_wrt_ld":
        return [(x - ld.min()) / (ld.max() - ld.min()) for x in (ld, fd)]
    if method == "std_independent":
        return [(x - x.mean()) / (x.max() - x.min()) for x in (ld, fd)]
    if method == "std_wrt_ld":
        return [(x - ld.mean()) / (ld.max() - ld.min()) for x in (ld, fd)]
    if method == "max_val_independent":
        out = []
        for x in (ld, fd):
            s = x - x.min() if x.min() < 0 else x
            out.append(s / s.max())
        return out
    if method == "max_val_wrt_ld":  # SPEC 2b: each image its own shift, the low-dose maximum
        shifted = [x - x.min() if x.min() < 0 else x for x in (ld, fd)]
        return [s / shifted[0].max() for s in shifted]
    if method == "dicom_unity":
        return ld / 4096, fd / 4096
    if method == "dicom_std":
        return (ld - ld.mean()) / 4096, (fd - fd.mean()) / 4096
    if method == "set_max_val":
        return ld / 4094, fd / 4094
    raise AssertionError(method)


def test_ten_names():
    assert set(NORMALIZATIONS) == {
        "none",
        "unity_independent",
        "unity_wrt_ld",
        "std_independent",
        "std_wrt_ld",
        "max_val_independent",
        "max_val_wrt_ld",
        "dicom_unity",
        "dicom_std",
        "set_max_val",
    }
    assert len(NORMALIZATIONS) == 10


def _synthetic_pair(negative):
    rng = np.random.default_rng(7)
    ld = rng.normal(800.0, 400.0, size=(64, 48))
    fd = ld + rng.normal(0.0, 50.0, size=ld.shape)
    if negative:
        ld -= 2000.0
        fd -= 2100.0
    else:
        ld = np.abs(ld) + 10.0
        fd = np.abs(fd) + 10.0
    return ld, fd


@pytest.mark.parametrize("negative", [False, True], ids=["non-negative", "negative"])
@pytest.mark.parametrize("method", NORMALIZATIONS)
def test_each_normalization_matches_its_formula(method, negative):
    ld, fd = _synthetic_pair(negative)
    want_ld, want_fd = spec_formula(method, ld, fd)
    got_ld, got_fd = normalize_pair(ld, fd, method)
    assert got_ld.dtype == np.float32 and got_fd.dtype == np.float32
    assert got_ld.shape == ld.shape and got_fd.shape == fd.shape
    np.testing.assert_allclose(got_ld, want_ld, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_fd, want_fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("method", NORMALIZATIONS)
def test_each_normalization_on_real_pair(method):
    base = SHARED_LDCT / "L096"
    if not base.exists():
        pytest.skip(f"real LDCT data not found at {base}")
    import pydicom

    ld = pydicom.dcmread(base / "quarter_3mm_sharp_sorted" / "000061.IMA").pixel_array
    fd = pydicom.dcmread(base / "full_3mm_sharp_sorted" / "000061.IMA").pixel_array
    want_ld, want_fd = spec_formula(method, ld, fd)
    got_ld, got_fd = normalize_pair(ld, fd, method)
    np.testing.assert_allclose(got_ld, want_ld, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got_fd, want_fd, rtol=1e-6, atol=1e-6)


def test_known_ranges():
    ld, fd = _synthetic_pair(negative=True)
    a, b = normalize_pair(ld, fd, "unity_independent")
    assert _mm(a) == pytest.approx((0.0, 1.0)) and _mm(b) == pytest.approx((0.0, 1.0))
    a, _ = normalize_pair(ld, fd, "max_val_independent")
    assert _mm(a) == pytest.approx((0.0, 1.0))
    a, _ = normalize_pair(ld, fd, "std_wrt_ld")
    assert float(a.mean()) == pytest.approx(0.0, abs=1e-6)


def test_max_val_without_negative_values_does_not_shift():
    ld = np.array([[10.0, 20.0], [30.0, 40.0]])
    a, b = normalize_pair(ld, 2 * ld, "max_val_independent")
    np.testing.assert_allclose(a, [[0.25, 0.5], [0.75, 1.0]])
    np.testing.assert_allclose(b, [[0.25, 0.5], [0.75, 1.0]])


def test_max_val_wrt_ld_shifts_each_image_by_its_own_minimum():
    # SPEC 2b: ld [-100, 300] -> [0, 400], fd [-200, 200] -> [0, 400]; both / 400
    ld = np.array([[-100.0, 300.0]])
    fd = np.array([[-200.0, 200.0]])
    a, b = normalize_pair(ld, fd, "max_val_wrt_ld")
    np.testing.assert_allclose(a, [[0.0, 1.0]])
    np.testing.assert_allclose(b, [[0.0, 1.0]])
    # a target with no negative value is not shifted; divided by the low-dose shifted max
    a, b = normalize_pair(ld, np.array([[50.0, 600.0]]), "max_val_wrt_ld")
    np.testing.assert_allclose(b, [[0.125, 1.5]])


def test_wrt_ld_applies_low_dose_statistics_to_target():
    ld = np.array([[0.0, 100.0]])
    fd = np.array([[50.0, 200.0]])
    _, b = normalize_pair(ld, fd, "unity_wrt_ld")
    np.testing.assert_allclose(b, [[0.5, 2.0]])


def test_unknown_method_lists_allowed_ones():
    with pytest.raises(ValueError, match="unity_wrt_ld") as info:
        normalize_pair(np.ones((2, 2)), np.ones((2, 2)), "zscore")
    assert "zscore" in str(info.value)


@pytest.mark.parametrize("method", ["unity_independent", "std_independent", "max_val_independent"])
def test_constant_target_image_rejected_naming_it(method):
    ld = np.arange(4.0).reshape(2, 2)
    fd = np.zeros((2, 2)) if method == "max_val_independent" else np.full((2, 2), 7.0)
    with pytest.raises(ValueError, match="full-dose image is constant"):
        normalize_pair(ld, fd, method)


@pytest.mark.parametrize("method", ["unity_wrt_ld", "std_wrt_ld", "max_val_wrt_ld"])
def test_constant_low_dose_image_rejected_naming_it(method):
    ld = np.zeros((2, 2))
    with pytest.raises(ValueError, match="low-dose image is constant"):
        normalize_pair(ld, np.arange(4.0).reshape(2, 2), method)


def test_constant_image_fine_where_nothing_divides_by_range():
    a, b = normalize_pair(np.full((2, 2), 5.0), np.full((2, 2), 5.0), "dicom_std")
    assert np.all(a == 0) and np.all(b == 0)


def test_shape_mismatch_rejected():
    with pytest.raises(ValueError, match="same shape"):
        normalize_pair(np.ones((2, 2)), np.ones((2, 3)), "none")


def test_non_finite_values_rejected():
    with pytest.raises(ValueError, match="finite"):
        normalize_pair(np.array([[np.nan, 1.0]]), np.ones((1, 2)), "none")


def test_reference_constants_are_keyword_settings():
    x = np.array([[4096.0, 2048.0]])
    a, _ = normalize_pair(x, x, "dicom_unity", dicom_scale=2048.0)
    np.testing.assert_allclose(a, [[2.0, 1.0]])
    a, _ = normalize_pair(x, x, "set_max_val", max_value=1024.0)
    np.testing.assert_allclose(a, [[4.0, 2.0]])


def test_hu_window_formula():
    hu = np.linspace(-1500.0, 1000.0, 101)
    want = np.clip((hu + 1000.0) / 1400.0, 0.0, 1.0) - 0.25
    np.testing.assert_allclose(hu_window(hu), want, rtol=1e-6, atol=1e-7)
    assert hu_window(hu).dtype == np.float32


def test_hu_window_without_clip_and_custom_window():
    hu = np.array([-1200.0, 0.0, 600.0])
    got = hu_window(hu, hu_min=-1200.0, hu_max=600.0, clip=False, center=0.0)
    np.testing.assert_allclose(got, (hu + 1200.0) / 1800.0, rtol=1e-6)
    got = hu_window(np.array([2000.0]), clip=False)
    np.testing.assert_allclose(got, [(2000.0 + 1000.0) / 1400.0 - 0.25], rtol=1e-6)


def test_hu_window_accepts_int16_and_leaves_input_unchanged():
    hu = np.array([[-1024, 0], [400, 3071]], dtype=np.int16)
    before = hu.copy()
    got = hu_window(hu)
    np.testing.assert_allclose(got, [[-0.25, 1000 / 1400 - 0.25], [0.75, 0.75]], rtol=1e-6)
    np.testing.assert_array_equal(hu, before)
    f32 = hu.astype(np.float32)
    hu_window(f32)
    np.testing.assert_array_equal(f32, before)


def test_hu_window_rejects_empty_window():
    with pytest.raises(ValueError, match="hu_max > hu_min"):
        hu_window(np.zeros(3), hu_min=400.0, hu_max=400.0)
