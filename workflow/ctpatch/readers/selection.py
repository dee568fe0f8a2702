"""Which rows of which files a reader reads: the files' kinds checked and cut into :class:`Segment` s.

A dataset over several files and kinds is a list of segments, one per (file, kind), each a run of
positions ``start .. start + len(rows)`` mapped to the file rows ``rows``.  All segments of one
dataset have one patch shape, dtype and stored layout (checked here, naming the files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctpatch.luna16.layouts import has_images
from ctpatch.luna16.layouts import images as open_images
from ctpatch.readers.contract import KINDS, MODE_KINDS, file_mode, file_settings, luna_spacing, stored_layout
from ctpatch.store.h5 import h5py
from ctpatch.store.reading import check_virtual_sources


def as_paths(paths) -> list[str]:
    """One path or a sequence of paths as a non-empty list of str."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = [os.fspath(p) for p in paths]
    if not out:
        raise ValueError("Expected at least one patch file, got none")
    return out


def kinds_of(kind, mode: str, path) -> tuple[str, ...]:
    """The kinds ``kind`` names (None: the mode's first), each checked against the file's mode."""
    if kind is None:
        kinds = MODE_KINDS[mode][:1]
    elif isinstance(kind, str):
        kinds = (kind,)
    else:
        kinds = tuple(kind)
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"Expected kind in {sorted(KINDS)}, got {k!r}")
        if KINDS[k][3] != mode:
            raise ValueError(
                f"{path}: kind {k!r} belongs to mode {KINDS[k][3]}, but the file is a {mode} file "
                f"(its kinds: {list(MODE_KINDS[mode])})"
            )
    return kinds


@dataclass(frozen=True)
class Segment:
    """The rows of one kind of one file that a dataset reads, at positions ``start .. start + len(rows)``."""

    path: str
    file_index: int
    kind: str
    rows: np.ndarray
    start: int
    stored_layout: str
    image_shape: tuple
    image_dtype: np.dtype
    label_shape: tuple
    label_dtype: np.dtype
    prov_dtype: np.dtype = None
    #: for files that record no spacing per patch: the configured spacing (LUNA16: x, y, z); None: LDCT
    spacing: tuple | None = None

    @property
    def image(self) -> str:
        """Name of the image dataset of this segment's kind."""
        return KINDS[self.kind][0]

    @property
    def label(self) -> str:
        """Name of the label dataset (LDCT: target) of this segment's kind."""
        return KINDS[self.kind][1]

    @property
    def table(self) -> str:
        """Path of the provenance table of this segment's kind."""
        return KINDS[self.kind][2]


def selection(rows, path: str, kind: str, n: int) -> np.ndarray:
    """The rows of ``path``/``kind`` that ``rows`` ({path: idx} or {(path, kind): idx}) selects; all when None."""
    if rows is None:
        return np.arange(n, dtype=np.int64)
    key_path = os.path.abspath(path)
    chosen = None
    for key, value in rows.items():
        if isinstance(key, tuple):
            p, k = key
            if os.path.abspath(os.fspath(p)) == key_path and k == kind:
                chosen = value
        elif os.path.abspath(os.fspath(key)) == key_path and chosen is None:
            chosen = value
    if chosen is None:
        return np.zeros(0, dtype=np.int64)
    sel = np.asarray(chosen, dtype=np.int64).reshape(-1)
    if sel.size and (sel.min() < 0 or sel.max() >= n):
        raise ValueError(f"{path}: {kind}: expected row indices in [0, {n}), got range [{sel.min()}, {sel.max()}]")
    return sel


def segments(paths: list[str], kind, rows) -> tuple[list[Segment], str, tuple[str, ...]]:
    """The segments of ``paths`` x kinds (files first, then kinds), the mode and the kinds; checked."""
    segments: list[Segment] = []
    start = 0
    mode = kinds = None
    for i, path in enumerate(paths):
        if not Path(path).is_file():
            raise ValueError(f"{path}: patch file not found")
        with h5py.File(path, "r") as f:
            check_virtual_sources(f, path)
            m = file_mode(f, path)
            if mode is None:
                mode, kinds = m, kinds_of(kind, m, path)
            elif m != mode:
                raise ValueError(f"{path}: a {m} file among {mode} files ({paths[0]}): one dataset reads one mode")
            for k in kinds:
                img_name, lab_name, table, _ = KINDS[k]
                missing = [n for n in (img_name, lab_name, table) if not has_images(f, n)]
                if missing:
                    raise ValueError(f"{path}: kind {k!r} needs {[img_name, lab_name, table]}, missing {missing}")
                img, lab, prov = open_images(f, img_name), f[lab_name], f[table]
                if not (img.shape[0] == lab.shape[0] == prov.shape[0]):
                    raise ValueError(
                        f"{path}: {img_name}, {lab_name} and {table} have {img.shape[0]}, "
                        f"{lab.shape[0]} and {prov.shape[0]} rows; expected equal counts"
                    )
                sel = selection(rows, path, k, img.shape[0])
                spacing = tuple(luna_spacing(file_settings(f))) if mode == "luna16" else None
                seg = Segment(
                    path,
                    i,
                    k,
                    sel,
                    start,
                    stored_layout(f, k),
                    img.shape[1:],
                    img.dtype,
                    lab.shape[1:],
                    lab.dtype,
                    prov.dtype,
                    spacing,
                )
                if segments:
                    ref = segments[0]
                    if (seg.image_shape, seg.image_dtype, seg.label_shape, seg.label_dtype, seg.stored_layout) != (
                        ref.image_shape,
                        ref.image_dtype,
                        ref.label_shape,
                        ref.label_dtype,
                        ref.stored_layout,
                    ):
                        raise ValueError(
                            f"{path}: {k} patches are {seg.image_shape} {seg.image_dtype} / labels {seg.label_shape} "
                            f"{seg.label_dtype} ({seg.stored_layout}), but {ref.path}: {ref.kind} has "
                            f"{ref.image_shape} {ref.image_dtype} / {ref.label_shape} {ref.label_dtype} "
                            f"({ref.stored_layout}); one dataset needs one patch shape and dtype"
                        )
                segments.append(seg)
                start += len(sel)
    return segments, mode, kinds
