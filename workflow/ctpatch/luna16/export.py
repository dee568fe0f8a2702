"""Write the full layout from a crops- or volumes-layout LUNA16 patch file: every image patch cut again.

The result is the file the workflow writes with ``output.layout: full`` (same datasets, rows,
provenance and attributes; ``settings.output.layout`` says ``full``).  Everything but the image
patches cut on reading is copied as stored (HDF5 object copy, no decompression).  Crops: the
nodule patches are cut from one decoded crop at a time (memory: one crop plus one patch).
Volumes: the nodule and non-nodule patches are cut from the bricks, :data:`BLOCK` rows at a time
(memory: a block plus the reader's brick cache).

Usage: ``python -m ctpatch.luna16.export COMPACT.h5 FULL.h5 [--compression CODEC]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ctpatch.core.bricks import cut_from_crop
from ctpatch.luna16.layouts import VolumePatches, is_crops, is_volumes
from ctpatch.store.atomic import atomic_path
from ctpatch.store.codecs import COMPRESSION, codec_of, create_patch_dataset
from ctpatch.store.h5 import h5py

CROP_OBJECTS = ("nodule_crop", "nodule_view", "provenance/nodule_crop")
VOLUME_OBJECTS = ("volume_brick", "provenance/volume_brick")
#: patches cut and written per call when exporting a volumes-layout file
BLOCK = 64


class ExportError(ValueError):
    """A file that cannot be exported; the message names it."""


def export_full(src_path, dst_path, compression: str | None = None) -> dict:
    """Write ``dst_path`` in the full layout from the crops or volumes file ``src_path``; return counts."""
    src_path, dst_path = Path(src_path), Path(dst_path)
    if not src_path.is_file():
        raise ExportError(f"{src_path}: file not found")
    with h5py.File(src_path, "r") as src:
        if is_volumes(src):
            return _export_volumes(src, src_path, dst_path, compression)
        if not is_crops(src):
            raise ExportError(
                f"{src_path}: neither a crops-layout file (no nodule_crop / nodule_view datasets) nor a "
                f"volumes-layout file (no volume_brick dataset)"
            )
        crops, view = src["nodule_crop"], src["nodule_view"][...]
        codec = compression or codec_of(crops)
        if codec not in COMPRESSION:
            raise ExportError(f"--compression: expected one of {sorted(COMPRESSION)}, got {codec!r}")
        patch = int(crops.attrs["patch_edge"])
        if len(view) and (view[:, 0].min() < 0 or view[:, 0].max() >= crops.shape[0]):
            raise ExportError(f"{src_path}: nodule_view names crops outside [0, {crops.shape[0]})")
        with atomic_path(dst_path) as tmp, h5py.File(tmp, "w") as dst:
            _copy_attrs(src, dst, codec if compression else None)
            out = create_patch_dataset(dst, "nodule", (patch,) * 3 + crops.shape[-1:], crops.dtype, codec)
            out.resize(len(view), axis=0)
            crop = np.empty(crops.shape[1:], dtype=crops.dtype)
            order = np.argsort(view[:, 0], kind="stable")
            bounds = np.flatnonzero(np.diff(view[order, 0])) + 1
            for rows in np.split(order, bounds) if len(order) else []:
                crops.read_direct(crop, np.s_[int(view[rows[0], 0])], np.s_[...])
                for r in np.sort(rows):
                    out[int(r)] = cut_from_crop(crop, view[r, 1:], patch)
            _copy_rest(src, dst, (*CROP_OBJECTS, "nodule"), codec if compression else None)
        return {"nodule_patches": int(len(view)), "crops": int(crops.shape[0])}


def _export_volumes(src: h5py.File, src_path: Path, dst_path: Path, compression: str | None) -> dict:
    """The volumes layout's :func:`export_full`: nodule and non-nodule patches cut from the bricks."""
    bricks = src["volume_brick"]
    codec = compression or codec_of(bricks)
    if codec not in COMPRESSION:
        raise ExportError(f"--compression: expected one of {sorted(COMPRESSION)}, got {codec!r}")
    try:
        readers = {kind: VolumePatches(src, kind) for kind in ("nodule", "non_nodule")}
    except (KeyError, ValueError) as exc:
        raise ExportError(f"{src_path}: {exc}") from None
    with atomic_path(dst_path) as tmp, h5py.File(tmp, "w") as dst:
        _copy_attrs(src, dst, codec if compression else None)
        for kind, reader in readers.items():  # the full layout's order: nodule, label_nodule, non_nodule, ...
            out = create_patch_dataset(dst, kind, reader.shape[1:], reader.dtype, codec, rows=len(reader))
            for a in range(0, len(reader), BLOCK):
                b = min(a + BLOCK, len(reader))
                out[a:b] = reader.read_rows(np.arange(a, b))
            _copy_rest(src, dst, (), codec if compression else None, only=("label_" + kind,))
        _copy_rest(src, dst, (*VOLUME_OBJECTS, "label_nodule", "label_non_nodule"), codec if compression else None)
    return {k + "_patches": len(r) for k, r in readers.items()} | {"volume_bricks": int(bricks.shape[0])}


def _copy_attrs(src: h5py.File, dst: h5py.File, codec: str | None) -> None:
    """The file attributes, ``settings.output.layout`` set to ``full`` (and the codec to ``codec``)."""
    for key, value in src.attrs.items():
        dst.attrs[key] = value
    raw = src.attrs.get("settings")
    if raw is None:
        raise ExportError(f"{src.filename}: no 'settings' attribute: not a ctpatch patch file")
    settings = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
    settings["output"]["layout"] = "full"
    if codec:
        settings["output"]["compression"] = codec
    dst.attrs["settings"] = json.dumps(settings, sort_keys=True)  # as the workflow writes it


def _copy_rest(src: h5py.File, dst: h5py.File, skip, codec: str | None, only=None) -> None:
    """Copy the datasets of ``src`` but ``skip`` (or just ``only``) as stored, patch datasets re-encoded
    with ``codec`` when given."""
    for name in _objects(src):
        if name in skip or (only is not None and name not in only) or name in dst:
            continue
        ds = src[name]
        if codec and ds.chunks and ds.ndim > 1 and not name.startswith("provenance/"):
            # another patch dataset, re-encoded with the requested codec
            enc = create_patch_dataset(dst, name, ds.shape[1:], ds.dtype, codec)
            enc.resize(ds.shape[0], axis=0)
            for i in range(ds.shape[0]):
                enc[i] = ds[i]
        else:
            if "/" in name:
                dst.require_group(name.rsplit("/", 1)[0])
            src.copy(src[name], dst, name=name)


def _objects(f: h5py.File) -> list[str]:
    """The datasets of a file by path (groups descended into)."""
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def main(argv=None) -> int:
    """``python -m ctpatch.luna16.export`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    ap = argparse.ArgumentParser(prog="python -m ctpatch.luna16.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("compact", help="a LUNA16 patch file written with output.layout: crops or volumes")
    ap.add_argument("full", help="the full-layout file to write")
    ap.add_argument("--compression", choices=sorted(COMPRESSION), help="codec of the output (default: the input's)")
    args = ap.parse_args(argv)
    try:
        counts = export_full(args.compact, args.full, args.compression)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if "crops" in counts:
        print(f"wrote {args.full}: {counts['nodule_patches']} nodule patches from {counts['crops']} crops")
    else:
        print(
            f"wrote {args.full}: {counts['nodule_patches']} nodule and {counts['non_nodule_patches']} non-nodule "
            f"patches from {counts['volume_bricks']} volume bricks"
        )
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
