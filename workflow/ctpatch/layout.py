"""The compact LUNA16 layout (``output.layout: crops``): one crop per nodule instead of its shifted patches.

All shifted patches of a nodule lie inside one box around it: with patch edge ``P`` and shifts
of at most ``m = S·M`` voxels per axis (the largest shift component), the box of edge
``C = P + 2·m`` (132 for the defaults) centred like the patches holds all 57 of them.  The crops
layout stores that box once per nodule (``nodule_crop``, (n, C, C, C, 1)) and, per nodule patch,
where it lies in its crop (``nodule_view``, (N, 4) int32: crop row, then the x, y, z start); the
label patches, the provenance and the negatives are stored as in the full layout.  A nodule patch
is then ``nodule_crop[v[0], v[1]:v[1]+P, v[2]:v[2]+P, v[3]:v[3]+P]`` for ``v = nodule_view[i]``,
equal voxel for voxel to the patch the full layout stores (outside the volume both hold the fill
value).

This module is the arithmetic only (no HDF5): :mod:`ctpatch.crop_reader` reads crops-layout files
like full ones, and ``python -m ctpatch.export`` writes the full layout from a crops file.

Geometry here is in (x, y, z), the order of the patches and of ``centre_voxel`` in provenance.
"""

from __future__ import annotations

import numpy as np

LAYOUTS = ("full", "crops")

PROV_CROP = np.dtype(
    [
        ("scan_index", "<i4"),
        ("seriesuid", "S64"),
        ("nodule_index", "<i4"),
        ("annotation_row", "<i4"),
        ("centre_voxel", "<i4", (3,)),
        ("start_voxel", "<i4", (3,)),
        ("edge", "<i4"),
    ]
)


# ------------------------------------------------------------------------------------ pure geometry
def shift_margin(offsets) -> int:
    """The largest shift component, in voxels: how far a shifted patch reaches past the centred one.

    >>> from ctpatch.shifts import shift_offsets
    >>> shift_margin(shift_offsets(8, 4))
    32
    """
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 3)
    return int(np.abs(off).max()) if off.size else 0


def crop_edge(patch: int, offsets) -> int:
    """Edge of the crop that holds every shifted patch of a nodule: ``P + 2·m``.

    >>> from ctpatch.shifts import shift_offsets
    >>> crop_edge(68, shift_offsets(8, 4))
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
