"""LUNA16 nodule-mode patch plans and cutting (SPEC §1.6-1.8), pure functions of arrays.

Volumes are (z, y, x) arrays (memory-mapped ``.npy`` in the workflow); patches are returned in
(x, y, z) order with a trailing channel axis, the layout of the reference's HDF5 files.  Every
centre handed to these functions is (z, y, x), the order of the array it indexes; provenance
records (x, y, z), the order of the patch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctpatch.geometry import crop
from ctpatch.labels import label_patch


@dataclass(frozen=True)
class PatchLocation:
    """Where a patch was cut: its centre voxel (z, y, x) and edge; ``to_slices`` gives the box."""

    centre_zyx: tuple[int, int, int]
    size: int

    @property
    def start_zyx(self) -> np.ndarray:
        return np.asarray(self.centre_zyx, dtype=np.int64) - self.size // 2

    def to_slices(self) -> tuple[slice, ...]:
        """The box ``[c - size/2, c + size/2)`` per axis (may leave the volume)."""
        return tuple(slice(int(s), int(s) + self.size) for s in self.start_zyx)


def cut_image(volume: np.ndarray, loc: PatchLocation, fill: float, dtype=np.float32) -> np.ndarray:
    """The image patch at ``loc``: (size, size, size, 1) in (x, y, z, channel) order.

    Voxels outside the volume take ``fill`` (the volume minimum: the reference padded with it).
    """
    box = crop(volume, loc.start_zyx, loc.size, fill)
    return np.ascontiguousarray(box.transpose(2, 1, 0)[..., None], dtype=dtype)


def cut_label(mask: np.ndarray, loc: PatchLocation, pool: int = 9) -> np.ndarray:
    """The label patch at ``loc``: pooled one-hot, e.g. (8, 8, 8, 2) float32 in (x, y, z, class) order."""
    box = crop(mask, loc.start_zyx, loc.size, False)
    return label_patch(np.ascontiguousarray(box.transpose(2, 1, 0)), pool)


def touches_mask(mask: np.ndarray, loc: PatchLocation) -> bool:
    """True when the patch box at ``loc`` holds any nodule voxel."""
    return bool(crop(mask, loc.start_zyx, loc.size, False).any())


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


def negatives_per_scan(nodule_patches: dict[str, int], ratio: float, scans: str = "with_nodules") -> dict[str, int]:
    """How many negatives each scan gives.

    ``with_nodules`` (reference): ``round(ratio * that scan's nodule patches)``; scans without
    nodules give none.  ``all``: ``round(ratio * all nodule patches)`` spread evenly over every
    scan in the given order, the first scans taking one more when it does not divide.

    >>> negatives_per_scan({"a": 57, "b": 0}, 3)
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
