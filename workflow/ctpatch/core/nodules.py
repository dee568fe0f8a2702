"""LUNA16 nodule-mode patch plans and cutting (SPEC §1.6-1.8), pure functions of arrays.

Volumes are (z, y, x) arrays (``.npy`` in the workflow); patches are returned in (x, y, z) order
with a trailing channel axis, the layout of the reference's HDF5 files.  Every centre handed to
these functions is (z, y, x), the order of the volume's array; provenance records (x, y, z), the
order of the patch.

The extraction cuts from the volume transposed once to (x, y, z) (:func:`cut_image_xyz`,
:func:`crop_mask_xyz`): each patch is then one copy of contiguous rows instead of a strided gather
followed by a transposing copy.  :func:`cut_label` cuts from a (z, y, x) mask (the plan's sample).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctpatch.core.geometry import crop
from ctpatch.core.labels import label_patch


@dataclass(frozen=True)
class PatchLocation:
    """Where a patch was cut: its centre voxel (z, y, x) and edge."""

    centre_zyx: tuple[int, int, int]
    size: int

    @property
    def start_zyx(self) -> np.ndarray:
        """First voxel (z, y, x) of the patch box: the centre minus half the edge (may be negative)."""
        return np.asarray(self.centre_zyx, dtype=np.int64) - self.size // 2


def cut_label(mask: np.ndarray, loc: PatchLocation, pool: int) -> np.ndarray:
    """The label patch at ``loc``: pooled one-hot, e.g. (8, 8, 8, 2) float32 in (x, y, z, class) order."""
    box = crop(mask, loc.start_zyx, loc.size, False)
    return label_patch(np.ascontiguousarray(box.transpose(2, 1, 0)), pool)


def _box_xyz(shape_xyz, loc: PatchLocation):
    """(start, inside, source slices, destination slices) of the patch box on an (x, y, z) array."""
    start = loc.start_zyx[::-1]
    end = start + loc.size
    shape = np.asarray(shape_xyz, dtype=np.int64)
    lo = np.clip(start, 0, shape)
    hi = np.clip(end, 0, shape)
    inside = bool(np.all(lo == start) and np.all(hi == end))
    if not np.all(hi > lo):
        return inside, None, None
    src = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))
    dst = tuple(slice(int(a - s), int(b - s)) for a, b, s in zip(lo, hi, start))
    return inside, src, dst


def cut_image_xyz(
    volume_xyz: np.ndarray, loc: PatchLocation, fill: float, dtype=np.float32, out: np.ndarray | None = None
) -> np.ndarray:
    """The image patch at ``loc``: (size, size, size, 1) in (x, y, z, channel) order, from the volume
    transposed to (x, y, z).

    ``loc`` is still given by its (z, y, x) centre.  Voxels outside the volume take ``fill`` (the
    volume minimum: the reference padded with it), cast to the volume's dtype first.  With ``out``
    (shape (size, size, size, 1), any dtype) the patch is written there, cast to ``out``'s dtype.

    >>> vol = np.arange(60, dtype=np.float32).reshape(3, 4, 5)
    >>> loc = PatchLocation((1, 2, 2), 4)
    >>> box = crop(vol, loc.start_zyx, loc.size, -1.0)  # (z, y, x)
    >>> bool(np.array_equal(cut_image_xyz(np.ascontiguousarray(vol.transpose(2, 1, 0)), loc, -1.0),
    ...                     box.transpose(2, 1, 0)[..., None]))
    True
    """
    size = loc.size
    if out is None:
        out = np.empty((size, size, size, 1), dtype=dtype)
    elif out.shape != (size, size, size, 1):
        raise ValueError(f"Expected out of shape {(size, size, size, 1)}, got {out.shape}")
    box = out[..., 0]
    inside, src, dst = _box_xyz(volume_xyz.shape, loc)
    if not inside:
        box[...] = np.asarray(fill, dtype=volume_xyz.dtype)
    if src is not None:
        box[dst] = volume_xyz[src]
    return out


def crop_mask_xyz(mask_xyz: np.ndarray, loc: PatchLocation) -> np.ndarray:
    """The (x, y, z) bool box of the patch at ``loc`` from a mask transposed to (x, y, z); False outside."""
    size = loc.size
    inside, src, dst = _box_xyz(mask_xyz.shape, loc)
    if inside:
        return mask_xyz[src]
    out = np.zeros((size, size, size), dtype=mask_xyz.dtype)
    if src is not None:
        out[dst] = mask_xyz[src]
    return out


class MaskIndex:
    """Which coarse cells of an (x, y, z) bool mask hold any True voxel, to skip empty crops cheaply.

    ``may_touch(loc)`` is False only when no voxel of the patch box at ``loc`` is True (exact:
    the cells covering the box are all empty); True means "look at the voxels".

    >>> m = np.zeros((40, 40, 40), bool); m[30, 30, 30] = True
    >>> idx = MaskIndex(m, cell=8)
    >>> idx.may_touch(PatchLocation((5, 5, 5), 10)), idx.may_touch(PatchLocation((30, 30, 30), 4))
    (False, True)
    """

    def __init__(self, mask_xyz: np.ndarray, cell: int = 8):
        self.cell = int(cell)
        self.shape = np.asarray(mask_xyz.shape, dtype=np.int64)
        n = -(-self.shape // self.cell)
        occ = np.zeros(tuple(n), dtype=bool)
        c = self.cell
        for x0 in range(0, int(self.shape[0]), c):  # slab by slab: no full-size temporary
            slab = np.asarray(mask_xyz[x0 : x0 + c])
            pad = np.zeros((c, n[1] * c, n[2] * c), dtype=bool)
            pad[: slab.shape[0], : slab.shape[1], : slab.shape[2]] = slab
            occ[x0 // c] = pad.reshape(c, n[1], c, n[2], c).any(axis=(0, 2, 4))
        self.occupied = occ

    def may_touch(self, loc: PatchLocation) -> bool:
        """False when no cell the patch box overlaps holds a mask voxel (then the patch holds none)."""
        start = loc.start_zyx[::-1]
        lo = np.clip(start, 0, self.shape)
        hi = np.clip(start + loc.size, 0, self.shape)
        if not np.all(hi > lo):
            return False
        a, b = lo // self.cell, (hi - 1) // self.cell + 1
        return bool(self.occupied[a[0] : b[0], a[1] : b[1], a[2] : b[2]].any())


def nodule_locations(centres_zyx, offsets_xyz, size: int):
    """Yield (nodule_index, shift_index, PatchLocation) for every nodule and shift, in that order."""
    offsets_zyx = np.asarray(offsets_xyz)[:, ::-1]
    for n, c in enumerate(np.asarray(centres_zyx, dtype=np.int64).reshape(-1, 3)):
        for s, off in enumerate(offsets_zyx):
            yield n, s, PatchLocation(tuple(int(v) for v in c + off), size)


def random_centres(shape_zyx, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` centres (z, y, x) drawn uniformly among the voxels of the volume, shape (count, 3).

    A patch around such a centre may leave the volume by up to half its edge (the reference
    padded the image by half a patch before drawing).
    """
    shape = np.asarray(shape_zyx, dtype=np.int64)
    return rng.integers(0, shape, size=(int(count), 3))


def patches_per_nodule(shifts_per_side: int, directions: int) -> int:
    """Patches cut around each nodule: the centre plus ``2 * shifts_per_side`` per direction.

    >>> patches_per_nodule(4, 7)
    57
    """
    return 1 + 2 * int(shifts_per_side) * int(directions)


def label_edge(size: int, pool: int) -> int:
    """Edge of a label patch: the patch edge ``size`` max-pooled in blocks of ``pool`` (edge block padded).

    >>> label_edge(68, 9)
    8
    """
    return -(-int(size) // int(pool))


def expected_counts(table, uids: list[str], n_offsets: int, ratio: float, scans: str) -> tuple[dict, dict]:
    """Nodule patches and negatives per scan, from the nodule table (a DataFrame with a ``seriesuid``
    column, one row per nodule), the patches per nodule and the negatives' ``ratio`` and ``scans``
    (:func:`negatives_per_scan`)."""
    per_scan = table.groupby("seriesuid").size().to_dict() if len(table) else {}
    nodule_patches = {uid: int(per_scan.get(uid, 0)) * n_offsets for uid in uids}
    return nodule_patches, negatives_per_scan(nodule_patches, ratio, scans)


def negatives_per_scan(nodule_patches: dict[str, int], ratio: float, scans: str) -> dict[str, int]:
    """How many negatives each scan gives.

    ``with_nodules`` (reference): ``round(ratio * that scan's nodule patches)``; scans without
    nodules give none.  ``all``: ``round(ratio * all nodule patches)`` spread evenly over every
    scan in the given order, the first scans taking one more when it does not divide.

    >>> negatives_per_scan({"a": 57, "b": 0}, 3, "with_nodules")
    {'a': 171, 'b': 0}
    >>> negatives_per_scan({"a": 57, "b": 0}, 3, "all")
    {'a': 86, 'b': 85}
    """
    if ratio < 0:
        raise ValueError(f"Expected a non-negative negatives ratio, got {ratio!r}")
    if scans == "with_nodules":
        return {uid: int(round(ratio * n)) for uid, n in nodule_patches.items()}
    if scans == "all":
        total = int(round(ratio * sum(nodule_patches.values())))
        q, r = divmod(total, max(len(nodule_patches), 1))
        return {uid: q + (1 if i < r else 0) for i, uid in enumerate(nodule_patches)}
    raise ValueError(f"Expected negatives scans 'with_nodules' or 'all', got {scans!r}")
