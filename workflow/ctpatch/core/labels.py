"""Nodule label volumes and label patches (SPEC §1.4 and §1.7).

Arrays here are indexed in the axis order the caller uses consistently; the functions that
take a centre say which order they expect.  Volumes in ctpatch are stored (z, y, x).
"""

from __future__ import annotations

import numpy as np


def nodule_radius_voxels(diameter_mm: float, spacing_y_mm: float) -> int:
    """The reference's sphere radius in voxels: ``int((diameter_mm / spacing_y) // 2)``.

    >>> nodule_radius_voxels(10.0, 1.25)
    4
    """
    if not diameter_mm >= 0:
        raise ValueError(f"Expected a non-negative diameter in mm, got {diameter_mm!r}")
    if not spacing_y_mm > 0:
        raise ValueError(f"Expected a positive spacing in mm, got {spacing_y_mm!r}")
    return int((diameter_mm / spacing_y_mm) // 2)


def paint_sphere(mask: np.ndarray, centre, radius: int) -> None:
    """Set to True, in place, every voxel ``v`` of ``mask`` with ``|v - centre|² <= radius²``.

    ``centre`` is an integer voxel index in the same axis order as ``mask``; the sphere is
    clipped at the volume border.  Only the sphere's bounding box is touched.
    """
    c = np.asarray(centre, dtype=np.int64)
    if c.shape != (mask.ndim,):
        raise ValueError(f"Expected a centre with {mask.ndim} values, got {c.tolist()!r}")
    r = int(radius)
    if r < 0:
        raise ValueError(f"Expected a non-negative radius, got {radius!r}")
    lo = np.maximum(c - r, 0)
    hi = np.minimum(c + r + 1, mask.shape)
    if np.any(hi <= lo):
        return
    grids = np.ogrid[tuple(slice(a, b) for a, b in zip(lo, hi))]
    dist2 = sum((g - ci) ** 2 for g, ci in zip(grids, c))
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    mask[box] |= dist2 <= r * r


def block_max_pool(patch: np.ndarray, block: int) -> np.ndarray:
    """Max over non-overlapping ``block``-sized cubes; a partial edge block is padded with 0.

    A 68³ patch with ``block=9`` gives 8³ (68 = 7·9 + 5: the 8th block holds 5 voxels).

    >>> block_max_pool(np.eye(4, dtype=bool), 3).astype(int).tolist()
    [[1, 0], [0, 1]]
    """
    if int(block) < 1:
        raise ValueError(f"Expected a pooling block >= 1, got {block!r}")
    block = int(block)
    out = np.asarray(patch)
    # One axis at a time, the first (slowest-varying) first: each step is an elementwise maximum
    # of ``block`` contiguous slabs, which numpy vectorises well, and shrinks the data ``block``-fold
    # before the next.  The maximum is exact, so the order of the axes does not change the result.
    for axis in range(out.ndim):
        n = out.shape[axis]
        m = -(-n // block)
        if m * block != n:
            widths = [(0, 0)] * out.ndim
            widths[axis] = (0, m * block - n)
            out = np.pad(out, widths)  # zeros, as the edge block was always padded
        out = out.reshape(out.shape[:axis] + (m, block) + out.shape[axis + 1 :]).max(axis=axis + 1)
    return out


def one_hot(labels: np.ndarray, n_classes: int = 2, dtype=np.float32) -> np.ndarray:
    """One-hot encode integer/bool labels on a new last axis: class 0 background, 1 nodule.

    >>> one_hot(np.array([0, 1, 1])).tolist()
    [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    """
    lab = np.asarray(labels).astype(np.int64)
    if lab.size and (lab.min() < 0 or lab.max() >= n_classes):
        raise ValueError(f"Expected labels in [0, {n_classes}), got range [{lab.min()}, {lab.max()}]")
    return (lab[..., None] == np.arange(n_classes)).astype(dtype)


def label_patch(mask_crop: np.ndarray, block: int, n_classes: int = 2) -> np.ndarray:
    """A mask crop -> pooled one-hot label patch, e.g. 68³ bool -> (8, 8, 8, 2) float32.

    A crop without any nodule voxel (most negatives) is all background: it skips the pooling.
    """
    crop = np.asarray(mask_crop)
    if crop.dtype == bool and not crop.any():
        if int(block) < 1:
            raise ValueError(f"Expected a pooling block >= 1, got {block!r}")
        if n_classes < 1:
            raise ValueError(f"Expected labels in [0, {n_classes}), got range [0, 0]")
        out = np.zeros(tuple(-(-n // int(block)) for n in crop.shape) + (n_classes,), dtype=np.float32)
        out[..., 0] = 1.0
        return out
    return one_hot(
        block_max_pool(crop.view(np.uint8) if crop.dtype == bool else crop.astype(np.uint8), block), n_classes
    )
