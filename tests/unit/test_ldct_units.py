"""Tests of ctpatch.ldct.units: the plain and the super-resolution pair units, against computations here."""

from __future__ import annotations

import numpy as np
import pytest

from ctpatch.ldct.job import patch_dtype
from ctpatch.ldct.units import PlainUnit, SuperResolutionUnit, unit_for
from ctpatch.settings import ldct_job


def test_unit_for_chooses_by_settings_with_the_spec_sizes():
    plain = unit_for(ldct_job({"patch": {"code": "p55"}}))
    assert type(plain) is PlainUnit
    assert (plain.scale, plain.lr_edge, plain.edge, plain.padding) == (1, 55, 55, 8)  # SPEC 2: p55
    sr = unit_for(ldct_job({"patch": {"code": "p55"}, "super_resolution": {"enabled": True, "scale": 3}}))
    assert type(sr) is SuperResolutionUnit
    assert (sr.scale, sr.lr_edge, sr.edge, sr.padding) == (3, 18, 55, 8)  # SPEC 2c: int(55 / 3), HR 47 + 8
    exact = unit_for(
        ldct_job({"patch": {"code": "p55"}, "super_resolution": {"enabled": True, "scale": 3, "footprint": "exact"}})
    )
    assert (exact.lr_edge, exact.edge) == (18, 54)
    free = unit_for(
        ldct_job({"patch": {"code": None, "edge": 40, "padding": 4}, "super_resolution": {"enabled": True, "scale": 2}})
    )
    assert (free.scale, free.lr_edge, free.edge, free.padding) == (2, 20, 40, 4)


def test_super_resolution_copies_crop_to_the_scale_and_average_the_input():
    sr = unit_for(ldct_job({"super_resolution": {"enabled": True, "scale": 3}}))
    rng = np.random.default_rng(1)
    img = rng.normal(size=(10, 11))
    ins, tgs, raws = sr.copies([(1.0, img)], [(1.0, img + 1)], [(1.0, img + 2)], "pair x")
    want = np.array([[img[3 * i : 3 * i + 3, 3 * j : 3 * j + 3].mean() for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(ins[0][1], want, rtol=1e-6)
    assert np.array_equal(tgs[0][1], (img + 1)[:9, :9]) and np.array_equal(raws[0][1], (img + 2)[:9, :9])
    with pytest.raises(ValueError, match="pair x: super_resolution.scale 3"):
        sr.copies([(1.0, np.zeros((2, 2)))], [], [], "pair x")
    given = ([(1.0, img)], [(1.0, img + 1)], [(1.0, img + 2)])
    assert all(out is copies for out, copies in zip(unit_for(ldct_job({})).copies(*given, "pair x"), given))


@pytest.mark.parametrize("flip", ["lr", "ud"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_both_units_turn_each_patch_as_numpy_does(k, flip):
    rng = np.random.default_rng(k)
    a, b, big = rng.normal(size=(6, 6)), rng.normal(size=(6, 6)), rng.normal(size=(13, 13))
    axis = 1 if flip == "lr" else 0
    settings = ldct_job({"super_resolution": {"enabled": True, "scale": 2}})
    for unit, target in ((unit_for(ldct_job({})), b), (unit_for(settings), big)):
        (ra, rb, rk, rf), (fa, fb, fk, ff) = unit.rot_flip(a, target, k, flip)
        assert (rk, rf, fk, ff) == (k, b"", 0, flip.encode())
        assert np.array_equal(ra, np.rot90(a, k)) and np.array_equal(rb, np.rot90(target, k))
        assert np.array_equal(fa, a[:, ::-1] if axis else a[::-1]) and np.array_equal(fb, np.flip(target, axis))


def test_blend_uses_the_target_at_the_input_resolution_in_super_resolution():
    a, b, f = np.full((2, 2), 4.0), np.arange(16.0).reshape(4, 4), 0.5
    ba, bb = unit_for(ldct_job({"super_resolution": {"enabled": True, "scale": 2}})).blend(a, b, f)
    t = np.array([[2.5, 4.5], [10.5, 12.5]])  # 2 x 2 block means of b
    np.testing.assert_allclose(ba, t + f * (a - t))
    np.testing.assert_allclose(bb, b)
    pa, pb = unit_for(ldct_job({})).blend(a, b[:2, :2], f)
    np.testing.assert_allclose(pa, b[:2, :2] + f * (a - b[:2, :2]))
    np.testing.assert_allclose(pb, b[:2, :2])


def test_provenance_fields_and_their_check():
    plain, sr = unit_for(ldct_job({})), unit_for(ldct_job({"super_resolution": {"enabled": True, "scale": 3}}))
    assert plain.provenance((6, 9), (510, 510)) == () and sr.provenance((6, 9), (510, 510)) == ((6, 9), (510, 510))
    rows = np.zeros(2, patch_dtype(4, 8, sr.fields))
    rows["corner"], rows["copy_shape"] = [[2, 3], [0, 1]], [[170, 170], [170, 170]]
    rows["hr_corner"], rows["hr_copy_shape"] = rows["corner"] * 3, rows["copy_shape"] * 3
    assert sr.check_rows(rows) == []
    assert plain.check_rows(rows) == ["table 'patch' has hr_corner, but super_resolution is off"]
    rows["hr_corner"][1, 0] += 1
    assert sr.check_rows(rows) == ["1 patches whose hr_corner is not corner x 3"]
    rows["hr_copy_shape"][0] = 511
    assert sr.check_rows(rows)[1] == "patches whose hr_copy_shape is not copy_shape x 3"
    plain_rows = np.zeros(1, patch_dtype(4, 8))
    assert plain.check_rows(plain_rows) == []
    assert sr.check_rows(plain_rows) == ["super_resolution on, but table 'patch' has no hr_corner"]
    assert set(patch_dtype(4, 8, sr.fields).names) - set(plain_rows.dtype.names) == {"hr_corner", "hr_copy_shape"}
