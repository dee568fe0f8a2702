"""The compact LUNA16 layouts: ``crops`` (one crop per nodule instead of its shifted patches) and
``volumes`` (each scan's volume once, every patch cut from it on reading).

All shifted patches of a nodule lie inside one box around it: with patch edge ``P`` and shifts
of at most ``m = S·M`` voxels per axis (the largest shift component), the box of edge
``C = P + 2·m`` (132 for the defaults) centred like the patches holds all 57 of them.  The crops
layout stores that box once per nodule (``nodule_crop``, (n, C, C, C, 1)) and, per nodule patch,
where it lies in its crop (``nodule_view``, (N, 4) int32: crop row, then the x, y, z start); the
label patches, the provenance and the negatives are stored as in the full layout.  A nodule patch
is then ``nodule_crop[v[0], v[1]:v[1]+P, v[2]:v[2]+P, v[3]:v[3]+P]`` for ``v = nodule_view[i]``,
equal voxel for voxel to the patch the full layout stores (outside the volume both hold the fill
value).

The volumes layout stores each scan's converted volume, cast to the patch dtype, once: tiled into
cubic bricks of edge ``B`` (``output.brick``), the bricks past the volume's far faces padded with
the fill value (the volume minimum, as the patches outside the volume).  ``volume_brick``
((bricks, B, B, B, 1), one brick per chunk, every scan's bricks in C order of their (x, y, z) brick
index, scans in order) with ``provenance/volume_brick`` (scan, brick index, start voxel, the
volume's size, the fill).  No image patch is stored: patch ``i`` of ``nodule`` or ``non_nodule``
is the box of edge ``P`` around ``provenance/<kind>[i]["centre_voxel"]`` in the volume of its
``scan_index``, read from the bricks it touches (fill outside the volume); labels and provenance
are stored as in the full layout.

This module is the arithmetic only (no HDF5): :mod:`ctpatch.luna16.layouts` reads crops-layout files
like full ones, and ``python -m ctpatch.luna16.export`` writes the full layout from a crops file.

Geometry here is in (x, y, z), the order of the patches and of ``centre_voxel`` in provenance.
"""

from __future__ import annotations

import numpy as np


# ------------------------------------------------------------------------------------ pure geometry
def shift_margin(offsets) -> int:
    """The largest shift component, in voxels: how far a shifted patch reaches past the centred one.

    >>> from ctpatch.core.shifts import DEFAULT_DIRECTIONS, shift_offsets
    >>> shift_margin(shift_offsets(8, 4, DEFAULT_DIRECTIONS))
    32
    """
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 3)
    return int(np.abs(off).max()) if off.size else 0


def crop_edge(patch: int, offsets) -> int:
    """Edge of the crop that holds every shifted patch of a nodule: ``P + 2·m``.

    >>> from ctpatch.core.shifts import DEFAULT_DIRECTIONS, shift_offsets
    >>> crop_edge(68, shift_offsets(8, 4, DEFAULT_DIRECTIONS))
    132
    """
    return int(patch) + 2 * shift_margin(offsets)


def box_start(centre_xyz, edge: int) -> np.ndarray:
    """First voxel (x, y, z) of the box of edge ``edge`` around ``centre`` (the patches' convention:
    ``[c - edge//2, c - edge//2 + edge)``)."""
    return np.asarray(centre_xyz, dtype=np.int64) - int(edge) // 2


def view_starts(patch_centres_xyz, crop_starts_xyz, patch: int, edge: int) -> np.ndarray:
    """Start (x, y, z) of each patch inside its crop, (n, 3); raises if a patch leaves its crop.

    >>> view_starts([[100, 100, 100], [108, 100, 68]], [[34, 34, 34], [34, 34, 34]], 68, 132).tolist()
    [[32, 32, 32], [40, 32, 0]]
    """
    pc = np.asarray(patch_centres_xyz, dtype=np.int64).reshape(-1, 3)
    cs = np.asarray(crop_starts_xyz, dtype=np.int64).reshape(-1, 3)
    starts = box_start(pc, patch) - cs
    bad = np.flatnonzero(np.any((starts < 0) | (starts > int(edge) - int(patch)), axis=1))
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{len(bad)} patches leave their crop of edge {edge}: e.g. patch centre {pc[i].tolist()} "
            f"with crop start {cs[i].tolist()} gives start {starts[i].tolist()}, expected within "
            f"[0, {int(edge) - int(patch)}]"
        )
    return starts


def match_crops(patch_keys: np.ndarray, crop_keys: np.ndarray) -> np.ndarray:
    """Row of ``crop_keys`` holding each of ``patch_keys`` ((n, 2) int arrays: scan index, nodule index).

    Raises when a patch has no crop or two crops share a key.

    >>> match_crops(np.array([[1, 0], [0, 2], [1, 0]]), np.array([[0, 2], [1, 0]])).tolist()
    [1, 0, 1]
    """
    pk = np.asarray(patch_keys, dtype=np.int64).reshape(-1, 2)
    ck = np.asarray(crop_keys, dtype=np.int64).reshape(-1, 2)
    code = lambda k: k[:, 0] * (1 << 32) + k[:, 1]  # noqa: E731 (non-negative int32 pairs: an exact packing)
    cc = code(ck)
    order = np.argsort(cc, kind="stable")
    if len(cc) > 1 and np.any(np.diff(cc[order]) == 0):
        raise ValueError("two crops of the same nodule")
    pos = np.searchsorted(cc[order], code(pk))
    pos = np.minimum(pos, max(len(cc) - 1, 0))
    if len(pk) and (not len(cc) or np.any(cc[order][pos] != code(pk))):
        missing = pk[cc[order][pos] != code(pk)][0] if len(cc) else pk[0]
        raise ValueError(f"no crop for the nodule patch of scan {int(missing[0])}, nodule {int(missing[1])}")
    return order[pos]


def cut_from_crop(crop: np.ndarray, start_xyz, patch: int) -> np.ndarray:
    """The patch ``crop[x:x+P, y:y+P, z:z+P]`` (a view; any trailing channel axis kept)."""
    x, y, z = (int(v) for v in start_xyz)
    return crop[x : x + patch, y : y + patch, z : z + patch]


# ------------------------------------------------------------------------------------ volumes layout
def brick_grid(size_xyz, edge: int) -> np.ndarray:
    """Bricks per axis (x, y, z) that tile a volume of ``size_xyz`` voxels: ``ceil(size / edge)``.

    >>> brick_grid((300, 250, 64), 32).tolist()
    [10, 8, 2]
    """
    size = np.asarray(size_xyz, dtype=np.int64).reshape(3)
    if int(edge) < 1 or np.any(size < 1):
        raise ValueError(f"Expected a brick edge >= 1 and a non-empty volume, got edge {edge!r}, size {size.tolist()}")
    return -(-size // int(edge))


def brick_indices(size_xyz, edge: int) -> np.ndarray:
    """Brick index (x, y, z) of every brick of a volume, (n, 3), in the stored order (C order, z fastest).

    >>> brick_indices((40, 20, 70), 32).tolist()
    [[0, 0, 0], [0, 0, 1], [0, 0, 2], [1, 0, 0], [1, 0, 1], [1, 0, 2]]
    """
    grid = brick_grid(size_xyz, edge)
    return np.stack(np.unravel_index(np.arange(int(np.prod(grid))), tuple(grid)), axis=1).astype(np.int64)


def cut_brick(volume_xyz: np.ndarray, index_xyz, edge: int, fill, out: np.ndarray) -> np.ndarray:
    """Brick ``index_xyz`` of an (x, y, z) volume into ``out`` ((B, B, B) or (B, B, B, 1), any dtype): the
    voxels ``[i·B, (i+1)·B)`` per axis cast to ``out``'s dtype, past the volume ``fill`` (cast to the
    volume's dtype first, as :func:`ctpatch.core.nodules.cut_image_xyz` fills)."""
    box = out.reshape((int(edge),) * 3)
    lo = np.asarray(index_xyz, dtype=np.int64) * int(edge)
    hi = np.minimum(lo + int(edge), volume_xyz.shape)
    if np.any(hi - lo < int(edge)):
        box[...] = np.asarray(fill, dtype=volume_xyz.dtype)
    box[: hi[0] - lo[0], : hi[1] - lo[1], : hi[2] - lo[2]] = volume_xyz[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    return out


def brick_span(start_xyz, patch: int, edge: int, grid) -> tuple[np.ndarray, np.ndarray]:
    """First and last brick index (x, y, z) a patch box starting at ``start_xyz`` touches, clipped to the
    grid; a box entirely outside the bricks has ``last < first`` on some axis.

    >>> [a.tolist() for a in brick_span((-10, 30, 60), 20, 32, (3, 3, 2))]
    [[0, 0, 1], [0, 1, 1]]
    """
    start = np.asarray(start_xyz, dtype=np.int64)
    first = np.maximum(np.floor_divide(start, int(edge)), 0)
    last = np.minimum(np.floor_divide(start + int(patch) - 1, int(edge)), np.asarray(grid, dtype=np.int64) - 1)
    return first, last
