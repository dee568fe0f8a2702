"""Voxel grids in physical space: world <-> voxel transforms and the resampled grid.

A :class:`VolumeGrid` follows SimpleITK's convention: ``origin``, ``spacing`` and ``size``
are in (x, y, z) order and ``direction`` is the 3x3 matrix of direction cosines (columns are
the axis directions), flattened row-major as SimpleITK returns it.  The numpy array of such a
volume (``sitk.GetArrayFromImage``) is indexed (z, y, x), the shape :attr:`VolumeGrid.shape_zyx`.

The output grid of a resampling is defined once (:func:`resampled_grid`) and used both to
resample the image and to convert annotation coordinates, so they cannot disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class VolumeGrid:
    """Geometry of a 3D image: voxel (i, j, k) -> world ``origin + D @ (spacing * (i, j, k))``.

    All tuples are in (x, y, z) order.

    >>> g = VolumeGrid(origin=(-100.0, -50.0, -300.0), spacing=(0.5, 0.5, 2.0), size=(10, 10, 5))
    >>> g.world_to_index((-99.0, -50.0, -296.0)).tolist()
    [2.0, 0.0, 2.0]
    """

    origin: tuple[float, float, float]
    spacing: tuple[float, float, float]
    size: tuple[int, int, int]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        for name in ("origin", "spacing", "size"):
            value = getattr(self, name)
            if len(value) != 3:
                raise ValueError(f"Expected 3 values (x, y, z) for {name}, got {value!r}")
        if any(s <= 0 for s in self.spacing):
            raise ValueError(f"Expected positive spacing, got {self.spacing!r}")
        if any(int(n) < 1 for n in self.size):
            raise ValueError(f"Expected a size of at least 1 voxel per axis, got {self.size!r}")
        if len(self.direction) != 9:
            raise ValueError(f"Expected 9 direction cosines, got {self.direction!r}")
        if not np.allclose(self.matrix.T @ self.matrix, np.eye(3), atol=1e-3):
            raise ValueError(f"Expected an orthonormal direction matrix, got {self.direction!r}")
        object.__setattr__(self, "origin", tuple(float(v) for v in self.origin))
        object.__setattr__(self, "spacing", tuple(float(v) for v in self.spacing))
        object.__setattr__(self, "size", tuple(int(v) for v in self.size))
        object.__setattr__(self, "direction", tuple(float(v) for v in self.direction))

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 direction matrix D (columns: world direction of the x, y, z index axes)."""
        return np.asarray(self.direction, dtype=np.float64).reshape(3, 3)

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        """The numpy array shape of this grid, (z, y, x)."""
        return self.size[::-1]

    def index_to_world(self, index_xyz) -> np.ndarray:
        """World millimetres (x, y, z) of a (continuous) voxel index (x, y, z); accepts (..., 3)."""
        idx = np.asarray(index_xyz, dtype=np.float64)
        return np.asarray(self.origin) + (idx * np.asarray(self.spacing)) @ self.matrix.T

    def world_to_index(self, world_xyz) -> np.ndarray:
        """Continuous voxel index (x, y, z) of world millimetres (x, y, z); accepts (..., 3)."""
        p = np.asarray(world_xyz, dtype=np.float64) - np.asarray(self.origin)
        return np.linalg.solve(self.matrix, p.T).T / np.asarray(self.spacing)

    def world_to_voxel(self, world_xyz) -> np.ndarray:
        """Nearest voxel index (x, y, z) as integers: within half a voxel of the true point."""
        return np.rint(self.world_to_index(world_xyz)).astype(np.int64)

    def contains_index(self, index_xyz) -> bool:
        """True when an integer voxel index (x, y, z) lies inside the grid."""
        idx = np.asarray(index_xyz)
        return bool(np.all(idx >= 0) and np.all(idx < np.asarray(self.size)))

    def to_dict(self) -> dict:
        """The grid as JSON-ready lists (origin, spacing, size, direction), as sidecars record it."""
        return {k: list(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> "VolumeGrid":
        """The grid :meth:`to_dict` wrote."""
        return cls(
            origin=tuple(data["origin"]),
            spacing=tuple(data["spacing"]),
            size=tuple(data["size"]),
            direction=tuple(data["direction"]),
        )


def resampled_grid(grid: VolumeGrid, target_spacing_mm: float) -> VolumeGrid:
    """The isotropic output grid covering the same physical box as ``grid``.

    ``new_size = round(size * spacing / target)``, and the real spacing is
    ``spacing * size / new_size`` (the reference's ``spacing / real_factor``).  The grid is
    corner-aligned: the outer faces of the first and last voxels coincide with those of the input,
    so the first voxel centre moves by half the difference of the spacings.

    >>> g = resampled_grid(VolumeGrid((0.0, 0.0, 0.0), (0.5, 0.5, 2.5), (10, 10, 4)), 1.25)
    >>> g.size, g.spacing
    ((4, 4, 8), (1.25, 1.25, 1.25))
    >>> g.origin
    (0.375, 0.375, -0.625)
    """
    if not target_spacing_mm > 0:
        raise ValueError(f"Expected a positive target spacing in mm, got {target_spacing_mm!r}")
    size = np.asarray(grid.size, dtype=np.float64)
    spacing = np.asarray(grid.spacing, dtype=np.float64)
    new_size = np.maximum(np.rint(size * spacing / target_spacing_mm), 1).astype(np.int64)
    new_spacing = spacing * size / new_size
    origin = np.asarray(grid.origin) + grid.matrix @ ((new_spacing - spacing) / 2.0)
    return VolumeGrid(origin=tuple(origin), spacing=tuple(new_spacing), size=tuple(new_size), direction=grid.direction)


def crop(volume: np.ndarray, start, size, fill) -> np.ndarray:
    """The box ``[start, start + size)`` of ``volume``, with ``fill`` where it leaves the volume.

    Works on any n-d array, memory-mapped ones included (only the box is read).  ``start`` and
    ``size`` are in the array's own axis order.

    >>> crop(np.arange(5), [-2], [4], fill=-1).tolist()
    [-1, -1, 0, 1]
    """
    start = np.asarray(start, dtype=np.int64)
    if start.shape != (volume.ndim,):
        raise ValueError(f"Expected a start with {volume.ndim} values, got {start.tolist()!r}")
    size = np.asarray(size, dtype=np.int64)
    if size.shape not in ((), start.shape):
        raise ValueError(f"Expected a size with 1 or {volume.ndim} values, got {size.tolist()!r}")
    size = np.broadcast_to(size, start.shape)
    if np.any(size < 1):
        raise ValueError(f"Expected a positive crop size, got {size.tolist()!r}")
    out = np.full(tuple(size), fill, dtype=volume.dtype)
    shape = np.asarray(volume.shape)
    lo = np.clip(start, 0, shape)
    hi = np.clip(start + size, 0, shape)
    if np.all(hi > lo):
        src = tuple(slice(a, b) for a, b in zip(lo, hi))
        dst = tuple(slice(a - s, b - s) for a, b, s in zip(lo, hi, start))
        out[dst] = volume[src]
    return out
