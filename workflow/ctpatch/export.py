"""Write the full layout from a crops-layout LUNA16 patch file: every nodule patch cut from its crop.

The result is the file the workflow writes with ``output.layout: full`` (same datasets, rows,
provenance and attributes; ``settings.output.layout`` says ``full``).  Everything but the nodule
patches is copied as stored (HDF5 object copy, no decompression); the nodule patches are cut from
one decoded crop at a time, so memory stays at one crop plus one patch.

Usage: ``python -m ctpatch.export CROPS.h5 FULL.h5 [--compression CODEC]``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ctpatch.crop_reader import is_crops
from ctpatch.h5 import h5py
from ctpatch.layout import cut_from_crop
from ctpatch.store import COMPRESSION, atomic_path, codec_of, create_patch_dataset

CROP_OBJECTS = ("nodule_crop", "nodule_view", "provenance/nodule_crop")


class ExportError(ValueError):
    """A file that cannot be exported; the message names it."""


def export_full(src_path, dst_path, compression: str | None = None) -> dict:
    """Write ``dst_path`` in the full layout from the crops file ``src_path``; return counts."""
    src_path, dst_path = Path(src_path), Path(dst_path)
    if not src_path.is_file():
        raise ExportError(f"{src_path}: file not found")
    with h5py.File(src_path, "r") as src:
        if not is_crops(src):
            raise ExportError(f"{src_path}: not a crops-layout file (no nodule_crop / nodule_view datasets)")
        crops, view = src["nodule_crop"], src["nodule_view"][...]
        codec = compression or codec_of(crops)
        if codec not in COMPRESSION:
            raise ExportError(f"--compression: expected one of {sorted(COMPRESSION)}, got {codec!r}")
        patch = int(crops.attrs["patch_edge"])
        if len(view) and (view[:, 0].min() < 0 or view[:, 0].max() >= crops.shape[0]):
            raise ExportError(f"{src_path}: nodule_view names crops outside [0, {crops.shape[0]})")
        with atomic_path(dst_path) as tmp, h5py.File(tmp, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            if "settings" in src.attrs:
                raw = src.attrs["settings"]
                settings = json.loads(raw.decode() if isinstance(raw, bytes) else str(raw))
                settings.setdefault("output", {})["layout"] = "full"
                if compression:
                    settings["output"]["compression"] = codec
                dst.attrs["settings"] = json.dumps(settings, sort_keys=True)  # as the workflow writes it
            out = create_patch_dataset(dst, "nodule", (patch,) * 3 + crops.shape[-1:], crops.dtype, codec)
            out.resize(len(view), axis=0)
            crop = np.empty(crops.shape[1:], dtype=crops.dtype)
            order = np.argsort(view[:, 0], kind="stable")
            bounds = np.flatnonzero(np.diff(view[order, 0])) + 1
            for rows in np.split(order, bounds) if len(order) else []:
                crops.read_direct(crop, np.s_[int(view[rows[0], 0])], np.s_[...])
                for r in np.sort(rows):
                    out[int(r)] = cut_from_crop(crop, view[r, 1:], patch)
            for name in _objects(src):
                if name in CROP_OBJECTS or name == "nodule":
                    continue
                ds = src[name]
                if compression and ds.chunks and ds.ndim > 1 and not name.startswith("provenance/"):
                    # another patch dataset, re-encoded with the requested codec
                    enc = create_patch_dataset(dst, name, ds.shape[1:], ds.dtype, codec)
                    enc.resize(ds.shape[0], axis=0)
                    for i in range(ds.shape[0]):
                        enc[i] = ds[i]
                else:
                    if "/" in name:
                        dst.require_group(name.rsplit("/", 1)[0])
                    src.copy(src[name], dst, name=name)
        return {"nodule_patches": int(len(view)), "crops": int(crops.shape[0])}


def _objects(f: h5py.File) -> list[str]:
    """The datasets of a file by path (groups descended into)."""
    names: list[str] = []
    f.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


def main(argv=None) -> int:
    """``python -m ctpatch.export`` with ``argv`` (default: the command line); returns the exit status
    (0 done, 1 an error reported in one line naming the file or key)."""
    ap = argparse.ArgumentParser(prog="python -m ctpatch.export", description=__doc__.split("\n\n")[0])
    ap.add_argument("crops", help="a LUNA16 patch file written with output.layout: crops")
    ap.add_argument("full", help="the full-layout file to write")
    ap.add_argument("--compression", choices=sorted(COMPRESSION), help="codec of the output (default: the input's)")
    args = ap.parse_args(argv)
    try:
        counts = export_full(args.crops, args.full, args.compression)
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {args.full}: {counts['nodule_patches']} nodule patches from {counts['crops']} crops")
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
