"""Tests of ctpatch.core.shifts against SPEC section 1 step 6, with the offset set built independently."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ctpatch.core.shifts import DEFAULT_DIRECTIONS, check_directions, shift_offsets


def spec_offsets(stride, m, axes_sets):
    """SPEC 1.6: the centre plus, per direction (set of axes) and k = 1..M, +S*k and -S*k on those axes."""
    out = {(0, 0, 0)}
    for axes in axes_sets:
        for k in range(1, m + 1):
            for sign in (1, -1):
                out.add(tuple(sign * stride * k if a in axes else 0 for a in range(3)))
    return out


ALL_AXIS_SETS = [c for r in (1, 2, 3) for c in itertools.combinations(range(3), r)]  # the 7 directions


def test_default_is_57_distinct_offsets_of_spec():
    off = shift_offsets(8, 4, DEFAULT_DIRECTIONS)  # SPEC 1.6: S = 8, M = 4, 7 directions
    assert off.shape == (57, 3)
    rows = [tuple(r) for r in off.tolist()]
    assert len(set(rows)) == 57, "every shifted patch must be distinct (the reference's minus shifts collapsed)"
    assert set(rows) == spec_offsets(8, 4, ALL_AXIS_SETS)
    assert rows[0] == (0, 0, 0)
    assert len(ALL_AXIS_SETS) == 7 and len(DEFAULT_DIRECTIONS) == 7


def test_default_directions_name_the_seven_axis_sets():
    letters = "xyz"
    assert {frozenset(letters.index(c) for c in d) for d in DEFAULT_DIRECTIONS} == {frozenset(s) for s in ALL_AXIS_SETS}


def test_default_offsets_reach_and_centre_kept():
    off = shift_offsets(8, 4, DEFAULT_DIRECTIONS)
    assert np.abs(off).max() == 32  # S * M
    # the nodule centre stays inside every 68-voxel patch: |offset| < 34 on every axis
    assert np.all(np.abs(off) < 68 // 2)
    assert off.dtype.kind == "i"


@pytest.mark.parametrize(
    "stride, m, directions, axes_sets",
    [
        (5, 2, ("x", "yz"), [(0,), (1, 2)]),
        (3, 1, ("z",), [(2,)]),
        (4, 3, ("xyz", "y"), [(0, 1, 2), (1,)]),
        (2, 5, DEFAULT_DIRECTIONS, ALL_AXIS_SETS),
    ],
)
def test_custom_stride_shifts_and_directions(stride, m, directions, axes_sets):
    off = shift_offsets(stride, m, directions)
    rows = [tuple(r) for r in off.tolist()]
    assert len(rows) == 1 + 2 * m * len(directions)
    assert len(set(rows)) == len(rows)
    assert set(rows) == spec_offsets(stride, m, axes_sets)
    assert rows[0] == (0, 0, 0)


def test_zero_shifts_is_the_centre_alone():
    assert shift_offsets(8, 0, DEFAULT_DIRECTIONS).tolist() == [[0, 0, 0]]


def test_letter_order_of_a_direction_does_not_matter():
    a = {tuple(r) for r in shift_offsets(8, 2, ("zx",)).tolist()}
    b = {tuple(r) for r in shift_offsets(8, 2, ("xz",)).tolist()}
    assert a == b == spec_offsets(8, 2, [(0, 2)])
    assert check_directions(["zyx", "yx"]) == ("xyz", "xy")


@pytest.mark.parametrize("directions", [("w",), ("",), ("xx",), ("x", "x"), ("xy", "yx"), (3,), ("x", None)])
def test_invalid_directions_raise(directions):
    with pytest.raises(ValueError, match="direction"):
        shift_offsets(8, 4, directions)


@pytest.mark.parametrize("stride, m", [(0, 4), (-8, 4), (8, -1)])
def test_invalid_stride_or_count_raise(stride, m):
    with pytest.raises(ValueError, match="stride|shifts_per_side"):
        shift_offsets(stride, m, DEFAULT_DIRECTIONS)
