"""Augmentation numerics of the LDCT mode (SPEC section 2, steps 2-6).

Pure functions of 2D arrays in axis order (row, col).  Every random draw comes from a
``numpy.random.Generator`` passed in by the caller (see :func:`ctpatch.core.rng.keyed_rng`), so
the same seed and keys give the same augmentations on any number of ranks.
"""

from __future__ import annotations

import math
import numbers

import numpy as np


def _as_image(image: object, name: str = "image") -> np.ndarray:
    arr = np.asarray(image)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(f"Expected a non-empty 2D {name} (rows, cols), got shape={arr.shape!r}")
    return arr


def _is_real(value: object) -> bool:
    return isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, bool)


def _check_pair(inp: object, tgt: object) -> tuple[np.ndarray, np.ndarray]:
    a = _as_image(inp, "input")
    b = _as_image(tgt, "target")
    if a.shape != b.shape:
        raise ValueError(f"Expected input and target of the same shape, got {a.shape!r} and {b.shape!r}")
    return a, b


def _round_half_up(value: float) -> int:
    return int(math.floor(value + 0.5))


def area_weights(n_in: int, n_out: int) -> np.ndarray:
    """Area-interpolation weights resizing one axis from ``n_in`` to ``n_out`` pixels.

    Output pixel ``j`` covers the input interval ``[j / f, (j + 1) / f)`` with
    ``f = n_out / n_in``; input pixel ``i`` covers ``[i, i + 1)``.  The weight of ``i`` in
    ``j`` is the length of the overlap, normalized so that each row sums to 1.

    Returns
    -------
    ndarray of float64, shape (n_out, n_in)

    Examples
    --------
    >>> area_weights(4, 2).tolist()
    [[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.5, 0.5]]
    """
    if not isinstance(n_in, (numbers.Integral, np.integer)) or n_in < 1:
        raise ValueError(f"Expected a positive integer n_in, got n_in={n_in!r}")
    if not isinstance(n_out, (numbers.Integral, np.integer)) or n_out < 1:
        raise ValueError(f"Expected a positive integer n_out, got n_out={n_out!r}")
    edges = np.arange(n_out + 1, dtype=np.float64) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    pix = np.arange(n_in, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, pix + 1.0) - np.maximum(lo, pix), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def downscaled_shape(shape: tuple[int, int], factor: float) -> tuple[int, int]:
    """Shape of a copy downscaled by ``factor``: ``int(n * factor)`` per axis (truncation).

    The reference program computes the size the same way (``int(w * 0.8)``), so a 512-pixel
    axis gives 409 at 0.8 and 307 at 0.6 (SPEC section 2b).

    Examples
    --------
    >>> downscaled_shape((512, 512), 0.8)
    (409, 409)
    """
    return int(shape[0] * factor), int(shape[1] * factor)


def area_resize(image: np.ndarray, factor: float) -> np.ndarray:
    """Downscale a 2D image by ``factor`` with exact area (box-overlap) interpolation.

    The output shape is ``int(shape * factor)`` per axis (truncated, as the reference
    program sizes its copies: 512 x 0.8 -> 409, SPEC section 2b).  The resize is separable:
    ``out = A @ image @ B.T`` with ``A = area_weights(rows, rows_out)``
    and ``B = area_weights(cols, cols_out)``, so every output pixel is the area-weighted
    mean of the input pixels under it and the image mean is preserved.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    factor : float
        Scale, ``0 < factor <= 1`` (area interpolation is a downscaling method).

    Returns
    -------
    ndarray of float32, shape (int(rows * factor), int(cols * factor))

    Examples
    --------
    >>> area_resize(np.arange(16.0).reshape(4, 4), 0.5).tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    img = _as_image(image)
    if not _is_real(factor) or not 0 < factor <= 1:
        raise ValueError(f"Expected 0 < factor <= 1, got factor={factor!r}")
    rows_out, cols_out = downscaled_shape(img.shape, factor)
    if rows_out < 1 or cols_out < 1:
        raise ValueError(
            f"Expected factor to leave at least one pixel per axis, got factor={factor!r} for shape {img.shape!r}"
        )
    a = area_weights(img.shape[0], rows_out)
    b = area_weights(img.shape[1], cols_out)
    return (a @ img.astype(np.float64) @ b.T).astype(np.float32)


def downscale_copies(image: np.ndarray, factors: tuple[float, ...]) -> list[tuple[float, np.ndarray]]:
    """The image itself plus area-downscaled copies (SPEC section 2 step 2).

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    factors : tuple of float
        Scales of the extra copies, each in (0, 1].

    Returns
    -------
    list of (factor, image)
        ``[(1.0, image), (factors[0], area_resize(image, factors[0])), ...]``; the first
        entry is ``image`` itself (not copied, dtype unchanged), the others are float32.

    Examples
    --------
    >>> [(f, a.shape) for f, a in downscale_copies(np.zeros((10, 10)), (0.8, 0.6))]
    [(1.0, (10, 10)), (0.8, (8, 8)), (0.6, (6, 6))]
    """
    img = _as_image(image)
    for f in factors:
        if not _is_real(f) or not 0 < f <= 1:
            raise ValueError(f"Expected every factor in (0, 1], got factors={factors!r}")
    return [(1.0, img)] + [(float(f), area_resize(img, f)) for f in factors]


def passes_air_threshold(
    patch: np.ndarray, value: float, fraction: float, mean: float, count_of: int | None = None
) -> bool:
    """Whether a patch holds enough tissue to keep (SPEC section 2 step 3).

    True when strictly more than ``fraction`` of the pixels exceed ``value`` and the patch
    mean exceeds ``mean``.  Judge it on the *unnormalized* target patch (raw stored values).
    With ``count_of`` the pixels must be more than ``int(fraction * count_of)`` instead (the
    reference's super-resolution program counted against the input edge squared, SPEC 2c).

    Parameters
    ----------
    patch : ndarray, shape (edge, edge)
    value, fraction, mean : float
        Reference 200, 0.10 and 100.
    count_of : int, optional
        The pixel count ``fraction`` is of; None: the patch's own.

    Examples
    --------
    >>> p = np.zeros((10, 10)); p[:2] = 1000.0   # 20 % at 1000, mean 200
    >>> passes_air_threshold(p, 200.0, 0.1, 100.0)
    True
    >>> p[1] = 0.0                               # 10 % is not more than 10 %
    >>> passes_air_threshold(p, 200.0, 0.1, 100.0)
    False
    """
    arr = np.asarray(patch)
    if arr.size == 0:
        raise ValueError(f"Expected a non-empty patch, got shape={arr.shape!r}")
    if not _is_real(fraction) or not 0 <= fraction <= 1:
        raise ValueError(f"Expected 0 <= fraction <= 1, got fraction={fraction!r}")
    above = np.count_nonzero(arr > value)
    need = fraction * arr.size if count_of is None else int(fraction * int(count_of))
    return bool(above > need and arr.mean(dtype=np.float64) > mean)


def rot_flip(inp: np.ndarray, tgt: np.ndarray, rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """A rotated and a flipped copy of an input/target pair (SPEC section 2 step 4).

    Draws ``k`` uniformly in {1, 2, 3}, then the flip direction (left-right or up-down,
    each with probability 1/2), in that order, from ``rng``.  The same transform is applied
    to input and target.

    Parameters
    ----------
    inp, tgt : ndarray, shape (rows, cols)
        Input and target patch, axis order (row, col).
    rng : numpy.random.Generator

    Returns
    -------
    list of (inp_aug, tgt_aug, info)
        ``[(rot90(inp, k), rot90(tgt, k), {"rot_k": k}),
        (flip(inp), flip(tgt), {"flip": "lr" | "ud"})]``; rotation is counter-clockwise
        on axes (0, 1) as in ``np.rot90``; "lr" reverses columns, "ud" reverses rows.
        The arrays are new contiguous arrays (not views).

    Examples
    --------
    >>> out = rot_flip(np.eye(2), np.eye(2), np.random.default_rng(0))
    >>> [sorted(info) for _, _, info in out]
    [['rot_k'], ['flip']]
    """
    a, b = _check_pair(inp, tgt)
    k, flip = draw_rot_flip(rng)
    return apply_rot_flip(a, b, k, flip)


def draw_rot_flip(rng: np.random.Generator) -> tuple[int, str]:
    """Draw ``k`` uniformly in {1, 2, 3}, then the flip (``"lr"`` or ``"ud"``, 1/2 each).

    The extraction draws once per image copy (the reference program's way, setting
    ``rot_augment.draw: per_copy``) or once per patch (``per_patch``).

    Examples
    --------
    >>> k, flip = draw_rot_flip(np.random.default_rng(0))
    >>> k in (1, 2, 3) and flip in ("lr", "ud")
    True
    """
    k = int(rng.integers(1, 4))
    flip = "lr" if int(rng.integers(0, 2)) == 0 else "ud"
    return k, flip


def apply_rot_flip(inp: np.ndarray, tgt: np.ndarray, k: int, flip: str) -> list[tuple[np.ndarray, np.ndarray, dict]]:
    """The rotated (``np.rot90`` by ``k``) and the flipped (``flip`` "lr" or "ud") copy of a pair.

    Returns the same list as :func:`rot_flip` for the given ``k`` and ``flip``.
    """
    a, b = _check_pair(inp, tgt)
    if k not in (0, 1, 2, 3) or flip not in ("lr", "ud"):
        raise ValueError(f"Expected k in 0..3 and flip 'lr' or 'ud', got k={k!r}, flip={flip!r}")
    axis = 1 if flip == "lr" else 0
    return [
        (
            np.ascontiguousarray(np.rot90(a, k, axes=(0, 1))),
            np.ascontiguousarray(np.rot90(b, k, axes=(0, 1))),
            {"rot_k": k},
        ),
        (
            np.ascontiguousarray(np.flip(a, axis=axis)),
            np.ascontiguousarray(np.flip(b, axis=axis)),
            {"flip": flip},
        ),
    ]


def draw_blend_factor(rng: np.random.Generator, low: float, high: float) -> float:
    """Draw a dose-blend factor ``f ~ U(low, high)`` (SPEC section 2 step 5).

    Examples
    --------
    >>> 0.5 <= draw_blend_factor(np.random.default_rng(1), 0.5, 1.2) < 1.2
    True
    """
    if not (_is_real(low) and _is_real(high)) or not low <= high:
        raise ValueError(f"Expected low <= high, got low={low!r}, high={high!r}")
    return float(rng.uniform(low, high))


def dose_blend(inp: np.ndarray, tgt: np.ndarray, f: float) -> tuple[np.ndarray, np.ndarray]:
    """Blend a new input between target and input (SPEC section 2 step 5).

    ``new_inp = tgt + f * (inp - tgt)``: ``f = 0`` gives the target, ``f = 1`` the input,
    ``f > 1`` extrapolates to a noisier input.  If ``new_inp.min() < 0``, both ``new_inp``
    and the target are shifted up by the same amount ``-new_inp.min()`` (so ``new_inp``
    then has minimum 0 and ``new_inp - new_tgt`` is still ``f * (inp - tgt)``); otherwise
    the target is returned unchanged.  Note that with zero-centred normalizations most
    patches go negative and are therefore shifted.

    Parameters
    ----------
    inp, tgt : ndarray, shape (rows, cols)
    f : float

    Returns
    -------
    new_inp, new_tgt : ndarray of float32, shape (rows, cols)

    Examples
    --------
    >>> a, b = dose_blend(np.array([[0.0, 4.0]]), np.array([[2.0, 2.0]]), 1.5)
    >>> a.tolist(), b.tolist()
    ([[0.0, 6.0]], [[3.0, 3.0]])
    """
    a, b = _check_pair(inp, tgt)
    if not _is_real(f) or not math.isfinite(f):
        raise ValueError(f"Expected a finite blend factor, got f={f!r}")
    a64 = a.astype(np.float64)
    b64 = b.astype(np.float64)
    new_inp = b64 + f * (a64 - b64)
    low = float(new_inp.min())
    if low < 0:
        new_inp = new_inp - low
        b64 = b64 - low
    return new_inp.astype(np.float32), b64.astype(np.float32)


def box_blur(image: np.ndarray, size: int) -> np.ndarray:
    """Mean over a ``size`` x ``size`` box around each pixel (edges: nearest pixel repeated).

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    size : int
        Odd box edge (reference 3).

    Returns
    -------
    ndarray of float32, shape (rows, cols)

    Examples
    --------
    >>> box_blur(np.array([[0.0, 0.0, 9.0]] * 3), 3).round(3).tolist()[1]
    [0.0, 3.0, 6.0]
    """
    img = _as_image(image)
    if not isinstance(size, (numbers.Integral, np.integer)) or size < 1 or size % 2 == 0:
        raise ValueError(f"Expected a positive odd box size, got size={size!r}")
    from scipy import ndimage  # here, not at the top: importing scipy.ndimage slows every extraction's start-up

    return ndimage.uniform_filter(img.astype(np.float64), size=int(size), mode="nearest").astype(np.float32)


def white_noise(image: np.ndarray, rng: np.random.Generator, scale: float) -> np.ndarray:
    """Add Gaussian white noise whose L2 norm is ``scale`` times the image's L2 norm.

    A standard-normal field of the image's shape is drawn from ``rng`` and rescaled so that
    ``||noise||_2 = scale * ||image||_2`` exactly (norms over all pixels); an all-zero image
    is returned unchanged.

    Parameters
    ----------
    image : ndarray, shape (rows, cols)
    rng : numpy.random.Generator
    scale : float
        Noise norm relative to the image norm (reference 0.01).

    Returns
    -------
    ndarray of float32, shape (rows, cols)
    """
    img = _as_image(image).astype(np.float64)
    if not _is_real(scale) or not scale >= 0:
        raise ValueError(f"Expected a non-negative noise scale, got scale={scale!r}")
    noise = rng.standard_normal(img.shape)
    target_norm = scale * float(np.linalg.norm(img))
    noise_norm = float(np.linalg.norm(noise))
    if target_norm == 0 or noise_norm == 0:
        return img.astype(np.float32)
    return (img + noise * (target_norm / noise_norm)).astype(np.float32)


def choose_share(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """Boolean mask choosing ``round(share * n)`` of ``n`` items uniformly without replacement.

    Rounding is half up (``share=0.5, n=5`` chooses 3).

    Returns
    -------
    ndarray of bool, shape (n,)

    Examples
    --------
    >>> int(choose_share(np.random.default_rng(0), 10, 0.3).sum())
    3
    """
    if not isinstance(n, (numbers.Integral, np.integer)) or n < 0:
        raise ValueError(f"Expected a non-negative integer n, got n={n!r}")
    if not _is_real(share) or not 0 <= share <= 1:
        raise ValueError(f"Expected 0 <= share <= 1, got share={share!r}")
    k = min(_round_half_up(share * n), int(n))
    mask = np.zeros(int(n), dtype=bool)
    mask[rng.choice(int(n), size=k, replace=False)] = True
    return mask
