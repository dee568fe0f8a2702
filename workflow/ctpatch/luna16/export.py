"""Write the full layout from a crops- or volumes-layout LUNA16 patch file: every image patch cut again.

The result is the file the workflow writes with ``output.layout: full`` (same datasets, rows,
provenance and attributes; ``settings.output.layout`` says ``full``).  Everything but the image
patches cut on reading is copied as stored (HDF5 object copy, no decompression).  Crops: the
nodule patches are cut from one decoded crop at a time (memory: one crop plus one patch).
Volumes: the nodule and non-nodule patches are cut from the bricks, a block of rows at a time
(memory: a block plus the reader's brick cache).  How each layout is written out is its
:meth:`ctpatch.luna16.layouts.base.Compact.export`.

Usage: ``python -m ctpatch.luna16.export COMPACT.h5 FULL.h5 [--compression CODEC]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ctpatch.luna16.layouts import LAYOUTS, ExportError, layout_for, layout_of
from ctpatch.store.codecs import COMPRESSION, codec_of
from ctpatch.store.h5 import h5py


def export_full(src_path, dst_path, compression: str | None = None) -> dict:
    """Write ``dst_path`` in the full layout from the crops or volumes file ``src_path``; return counts."""
    src_path, dst_path = Path(src_path), Path(dst_path)
    if not src_path.is_file():
        raise ExportError(f"{src_path}: file not found")
    with h5py.File(src_path, "r") as src:
        layout = layout_of(src)
        if layout.own is None:  # the full layout already: nothing to cut
            compact = [layout_for(name) for name in LAYOUTS if layout_for(name).own is not None]
            raise ExportError(
                f"{src_path}: neither "
                + " nor ".join(f"a {c.name}-layout file (no {' / '.join(c.marks)} datasets)" for c in compact)
            )
        codec = compression or codec_of(src[layout.own])
        if codec not in COMPRESSION:
            raise ExportError(f"--compression: expected one of {sorted(COMPRESSION)}, got {codec!r}")
        return layout.export(src, dst_path, codec, codec if compression else None)


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
