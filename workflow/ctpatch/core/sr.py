"""Super-resolution pairs of the LDCT mode (SPEC section 2c, the reference's ``main_sr.py``).

Pure functions of 2D arrays in axis order (row, col).  With ``scale`` s the input is the
low-dose image cropped to a multiple of s (:func:`modcrop`) and area-downscaled by s
(:func:`block_mean`: each LR pixel is the mean of an s x s block); the target is the full-dose
image, cropped the same way, at full size.  Patches are cut on an LR grid:

* HR (target) edge ``E = base + padding`` per size code (:data:`SR_BASE`; a free ``edge`` is the
  HR edge), or ``int(E / s) * s`` with ``footprint="exact"``;
* LR (input) edge ``e = int(E / s)``, LR stride ``e - padding``; LR starts on the LR image by the
  rule of :func:`ctpatch.core.grid.patch_starts`;
* the HR patch of the LR patch at ``(r, c)`` starts at ``(r * s, c * s)``, so the HR region of an
  LR patch is its LR region times s (with the reference footprint of p55 and s = 3 the HR patch,
  55, is one pixel wider than 3 x 18 = 54: the reference's target reaches one pixel past the
  input's footprint).

With s = 1 every size code gives the plain mode's edge and grid.
"""

from __future__ import annotations

import numbers

import numpy as np

#: size code -> (HR base, padding) of SPEC section 2c; the HR edge is base + padding
SR_BASE: dict[str, tuple[int, int]] = {
    "p96": (84, 12),
    "p75": (64, 11),
    "p64": (60, 4),
    "p55": (47, 8),
    "p54": (42, 12),
    "p42": (36, 6),
    "p32": (28, 4),
    "p24": (20, 4),
    "p12": (8, 4),
}
FOOTPRINTS = ("reference", "exact")


def _check_scale(scale) -> int:
    if not isinstance(scale, (numbers.Integral, np.integer)) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"Expected a positive integer scale, got scale={scale!r}")
    return int(scale)


def sr_sizes(hr_edge: int, padding: int, scale: int, footprint: str) -> tuple[int, int]:
    """(LR edge, HR edge) for an HR edge, padding and scale.

    ``e = int(hr_edge / scale)``; the HR edge is ``hr_edge`` (``"reference"``) or ``e * scale``
    (``"exact"``).  Raises ValueError when the LR stride ``e - padding`` is not positive.

    Examples
    --------
    >>> sr_sizes(55, 8, 3, "reference")
    (18, 55)
    >>> sr_sizes(55, 8, 3, "exact")
    (18, 54)
    """
    scale = _check_scale(scale)
    if footprint not in FOOTPRINTS:
        raise ValueError(f"Expected footprint in {FOOTPRINTS}, got footprint={footprint!r}")
    lr = int(hr_edge / scale)
    if lr - padding < 1:
        raise ValueError(
            f"Expected an LR edge larger than the padding, got LR edge int({hr_edge} / {scale}) = {lr} "
            f"with padding {padding} (LR stride {lr - padding})"
        )
    return lr, (hr_edge if footprint == "reference" else lr * scale)


def modcrop(image: np.ndarray, scale: int) -> np.ndarray:
    """The top-left part of ``image`` (rows, cols) whose sides are multiples of ``scale`` (a view).

    Examples
    --------
    >>> modcrop(np.zeros((512, 511)), 3).shape
    (510, 510)
    """
    scale = _check_scale(scale)
    img = np.asarray(image)
    if img.ndim != 2 or img.shape[0] < scale or img.shape[1] < scale:
        raise ValueError(f"Expected a 2D image of at least {scale} x {scale} pixels, got shape={img.shape!r}")
    return img[: img.shape[0] - img.shape[0] % scale, : img.shape[1] - img.shape[1] % scale]


def block_mean(image: np.ndarray, scale: int) -> np.ndarray:
    """Area downscaling by an integer ``scale``: the mean of each ``scale`` x ``scale`` block.

    The image sides must be multiples of ``scale`` (:func:`modcrop`).  Computed in float64,
    returned as float32, shape ``(rows // scale, cols // scale)``.

    Examples
    --------
    >>> block_mean(np.arange(16.0).reshape(4, 4), 2).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    scale = _check_scale(scale)
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.shape[0] % scale or img.shape[1] % scale or not img.size:
        raise ValueError(f"Expected a 2D image with sides that are multiples of {scale}, got shape={img.shape!r}")
    r, c = img.shape
    return img.reshape(r // scale, scale, c // scale, scale).mean(axis=(1, 3)).astype(np.float32)


def sr_dose_blend(lr: np.ndarray, hr: np.ndarray, f: float, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Dose blending of an SR pair: ``new_lr = t + f * (lr - t)`` with ``t`` the target's LR version.

    ``t`` is the block mean (by ``scale``) of the HR patch's footprint ``hr[:e*scale, :e*scale]``
    (``e`` the LR edge), i.e. the target at the input's resolution.  As in the plain mode, when
    ``new_lr`` goes negative both it and the HR target are shifted up by ``-new_lr.min()``.

    Returns float32 arrays shaped like ``lr`` and ``hr``.
    """
    scale = _check_scale(scale)
    a = np.asarray(lr, dtype=np.float64)
    b = np.asarray(hr, dtype=np.float64)
    e = a.shape[0]
    if a.ndim != 2 or a.shape[0] != a.shape[1] or b.ndim != 2 or min(b.shape) < e * scale:
        raise ValueError(
            f"Expected a square LR patch and an HR patch covering it x{scale}, got {a.shape} and {b.shape}"
        )
    t = block_mean(b[: e * scale, : e * scale], scale).astype(np.float64)
    new = t + f * (a - t)
    low = float(new.min())
    if low < 0:
        new = new - low
        b = b - low
    return new.astype(np.float32), b.astype(np.float32)
