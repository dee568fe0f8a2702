"""The LUNA16 output layouts (``luna16.output.layout``), one strategy object each, chosen once.

``full`` stores every image patch, ``crops`` one crop per nodule instead of its shifted patches,
``volumes`` each scan's volume in bricks and no image patch (:mod:`ctpatch.core.bricks`).
:func:`layout_for` gives the layout of a name (the job, the plan), :func:`layout_of` the layout of an
open file (verify, export, the readers); what differs between them is a method of
:class:`ctpatch.luna16.layouts.base.Layout`.

:func:`images` returns the patch dataset ``name`` of a file whatever its layout: the dataset
itself, or a reader that cuts the patches from the file's crops (:class:`CropPatches`) or bricks
(:class:`VolumePatches`) and reads like it (``shape``, ``dtype``, ``len``, ``[i]``, ``[i:j]``,
``read_direct``; recently decoded crops or bricks are cached).
"""

from __future__ import annotations

from ctpatch.luna16.layouts.base import CutSizes, ExportError, Layout, NodulePatch, PlanSizes
from ctpatch.luna16.layouts.crops import PROV_CROP, CropPatches, Crops, write_nodule_view
from ctpatch.luna16.layouts.volumes import (
    BRICK_CACHE_MB,
    BRICKS,
    PROV_BRICK,
    BrickCache,
    VolumePatches,
    Volumes,
    volume_index,
)
from ctpatch.store.h5 import h5py

FULL, CROPS, VOLUMES = Layout(), Crops(), Volumes()
_BY_NAME = {layout.name: layout for layout in (FULL, CROPS, VOLUMES)}
LAYOUTS = tuple(_BY_NAME)


def layout_for(name: str) -> Layout:
    """The layout called ``name`` (one of :data:`LAYOUTS`).

    >>> layout_for("crops").name
    'crops'
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"luna16.output.layout: expected one of {LAYOUTS}, got {name!r}") from None


def layout_of(f: h5py.File) -> Layout:
    """The layout of an open LUNA16 file: a compact layout whose datasets it holds, else the full one."""
    return next((layout for layout in (VOLUMES, CROPS) if layout.matches(f)), FULL)


def has_images(f: h5py.File, name: str) -> bool:
    """True when ``images(f, name)`` can read: the dataset itself, or patches cut from the file's crops
    or volumes."""
    return layout_of(f).has_images(f, name)


def images(f: h5py.File, name: str, cache_mb: float | None = None):
    """The patch dataset ``name`` of an open file, whatever the layout (``cache_mb``: the volumes
    layout's decoded-brick cache, default :data:`BRICK_CACHE_MB`)."""
    return layout_of(f).images(f, name, BRICK_CACHE_MB if cache_mb is None else cache_mb)


__all__ = [
    "BRICKS",
    "BRICK_CACHE_MB",
    "CROPS",
    "FULL",
    "LAYOUTS",
    "PROV_BRICK",
    "PROV_CROP",
    "VOLUMES",
    "BrickCache",
    "CropPatches",
    "Crops",
    "CutSizes",
    "ExportError",
    "Layout",
    "NodulePatch",
    "PlanSizes",
    "VolumePatches",
    "Volumes",
    "has_images",
    "images",
    "layout_for",
    "layout_of",
    "volume_index",
    "write_nodule_view",
]
