"""Plausibility of a scan's HU values: catches a header that reads the right bytes the wrong way.

A header that says ``MET_USHORT`` over int16 data, or a scan stored in other units, has the
right size and reads without error, yet gives patches clipped at the window top.  Three figures
of the voxel values (as read, before resampling) tell such a scan from a chest CT:

* air is present: at least ``min_air_share`` of the voxels lie below ``air_hu`` (-500 HU);
* few voxels sit at the normalization window's limits: at most ``max_share_at_hu_max`` at or
  above ``hu_max`` and at most ``max_share_at_hu_min`` at or below ``hu_min``;
* every value lies in ``hu_range`` (what a CT scanner writes) and none is NaN.

Every threshold is a setting (``luna16.plausibility``), and ``enabled: false`` turns the check off
for unusual data.
"""

from __future__ import annotations

import numpy as np

from ctpatch.settings.types import Plausibility


def hu_figures(hu: np.ndarray, hu_min: float, hu_max: float, air_hu: float, slab: int = 8) -> dict:
    """Shares of voxels below ``air_hu``, at or below ``hu_min``, at or above ``hu_max``; min, max, NaNs.

    ``hu`` is any array of HU values (any axis order); it is read ``slab`` entries of its first axis
    at a time, so the temporaries stay small (faster than whole-array comparisons:
    ``benchmarks/plausibility.py``).

    >>> f = hu_figures(np.array([-1000, -800, 0, 500]), -1000.0, 400.0, -500.0)
    >>> f["air_share"], f["share_at_hu_min"], f["share_at_hu_max"], f["min"], f["max"]
    (0.5, 0.25, 0.25, -1000.0, 500.0)
    """
    n = hu.size
    if n == 0:
        raise ValueError("Expected a non-empty volume, got 0 voxels")
    air = low = high = nan = 0
    lo, hi = [], []
    for i in range(0, hu.shape[0], slab):
        s = hu[i : i + slab]
        air += int(np.count_nonzero(s < air_hu))
        low += int(np.count_nonzero(s <= hu_min))
        high += int(np.count_nonzero(s >= hu_max))
        if s.dtype.kind == "f":
            k = int(np.count_nonzero(np.isnan(s)))
            nan += k
            if k < s.size:
                lo.append(np.nanmin(s))
                hi.append(np.nanmax(s))
        else:
            lo.append(s.min())
            hi.append(s.max())
    return {
        "voxels": int(n),
        "air_share": air / n,
        "share_at_hu_min": low / n,
        "share_at_hu_max": high / n,
        "min": float(min(lo)) if lo else float("nan"),
        "max": float(max(hi)) if hi else float("nan"),
        "nan": nan,
    }


def problems(figures: dict, hu_min: float, hu_max: float, s: Plausibility) -> list[str]:
    """What is implausible about a scan with these :func:`hu_figures`; empty when it looks like CT."""
    out = []
    if figures["nan"]:
        out.append(f"{figures['nan']} voxels are NaN")
    if figures["air_share"] < s.min_air_share:
        out.append(
            f"no air: {figures['air_share']:.2%} of voxels below {s.air_hu:g} HU "
            f"(expected at least {s.min_air_share:.2%}, min_air_share)"
        )
    if figures["share_at_hu_max"] > s.max_share_at_hu_max:
        out.append(
            f"{figures['share_at_hu_max']:.2%} of voxels at or above the window top {hu_max:g} HU "
            f"(expected at most {s.max_share_at_hu_max:.2%}, max_share_at_hu_max)"
        )
    if figures["share_at_hu_min"] > s.max_share_at_hu_min:
        out.append(
            f"{figures['share_at_hu_min']:.2%} of voxels at or below the window bottom {hu_min:g} HU "
            f"(expected at most {s.max_share_at_hu_min:.2%}, max_share_at_hu_min)"
        )
    lo, hi = s.hu_range
    if figures["min"] < lo or figures["max"] > hi:
        out.append(f"values span {figures['min']:g} .. {figures['max']:g} HU, outside hu_range [{lo:g}, {hi:g}]")
    return out


def check(hu: np.ndarray, hu_min: float, hu_max: float, plausibility: Plausibility) -> tuple[dict, list[str]]:
    """Figures and problems of one scan (HU values, any axis order); no problems when the check is disabled."""
    figures = hu_figures(hu, hu_min, hu_max, plausibility.air_hu)
    return figures, (problems(figures, hu_min, hu_max, plausibility) if plausibility.enabled else [])
