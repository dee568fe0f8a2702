"""Merge the ranks' shards into the final patch file(s), in an order independent of the ranks.

Patches are put in canonical order (by the mode's sort keys, e.g. scan then patch index), then
optionally shuffled by a permutation keyed by the seed and the output, and optionally split into
``nsplit`` files.  Chunks are copied as compressed bytes (one patch per chunk), so the merge
costs about one read and one write of the compressed data and holds one chunk at a time.

LUNA16 crops layout (:mod:`ctpatch.layout`): the nodule crops stay in canonical order (only the
patch rows that point into them are shuffled), each output file gets the crops its nodule patches
need, and ``nodule_view`` (crop row and start of each nodule patch) is computed here, aligned with
the shuffled ``provenance/nodule``.

Usage: ``python -m ctpatch.merge --mode luna16 --shards-dir D --out X.h5 [Y.h5 ...] --settings-file patches.json``
"""

from __future__ import annotations

import argparse
import json
import sys
from contextlib import ExitStack
from pathlib import Path

import numpy as np

import ctpatch
from ctpatch.h5 import h5py
from ctpatch.config import ConfigError, read_settings
from ctpatch.rng import keyed_rng
from ctpatch.layout import match_crops, view_starts
from ctpatch.store import atomic_path, codec_of, copy_chunks, create_patch_dataset

# per mode: provenance table -> (the patch datasets aligned with it, its canonical sort keys).
# A table without datasets (e.g. LDCT's per-pair summary) is written whole, unshuffled, to every part.
GROUPS = {
    "luna16": {
        "nodule": (("nodule", "label_nodule"), ("scan_index", "patch_index")),
        "non_nodule": (("non_nodule", "label_non_nodule"), ("scan_index", "patch_index")),
    },
    "ldct": {
        "patch": (("input", "target"), ("pair_index", "patch_index")),
        "pair": ((), ("pair_index",)),
    },
}


class MergeError(ValueError):
    pass


def read_manifest(shards_dir: Path) -> dict:
    path = shards_dir / "manifest.json"
    if not path.is_file():
        raise MergeError(f"{path}: missing: the extraction did not finish")
    manifest = json.loads(path.read_text())
    for s in manifest["shards"]:
        if not (shards_dir / s["shard"]).is_file():
            raise MergeError(f"{shards_dir / s['shard']}: listed in the manifest but missing")
    return manifest


def canonical_order(tables: list[np.ndarray], keys) -> tuple[np.ndarray, np.ndarray]:
    """(shard number, row in shard) of every row, sorted by ``keys``; raises on duplicate keys."""
    shard = np.concatenate([np.full(len(t), i, dtype=np.int64) for i, t in enumerate(tables)]) if tables else np.zeros(0, np.int64)
    row = np.concatenate([np.arange(len(t), dtype=np.int64) for t in tables]) if tables else np.zeros(0, np.int64)
    if not len(shard):
        return shard, row
    cols = [np.concatenate([t[k] for t in tables]) for k in keys]
    order = np.lexsort(cols[::-1])
    sorted_cols = np.stack([c[order] for c in cols], axis=1)
    if len(order) > 1 and np.any(np.all(sorted_cols[1:] == sorted_cols[:-1], axis=1)):
        raise MergeError("two shards hold the same patch: a unit was extracted twice")
    return shard[order], row[order]


def merge(shards_dir, outputs, mode: str, seed: int, shuffle: bool, attrs: dict | None = None) -> dict:
    """Merge; return counts per provenance table."""
    shards_dir = Path(shards_dir)
    outputs = [Path(o) for o in outputs]
    groups = GROUPS[mode]
    manifest = read_manifest(shards_dir)
    counts = {}
    with ExitStack() as stack:
        srcs = [stack.enter_context(h5py.File(shards_dir / s["shard"], "r")) for s in manifest["shards"]]
        tmps = [stack.enter_context(atomic_path(o)) for o in outputs]
        dsts = [stack.enter_context(h5py.File(t, "w")) for t in tmps]
        crops = mode == "luna16" and "nodule_crop" in srcs[0]
        for table, (datasets, keys) in groups.items():
            provs = [f[f"provenance/{table}"][...] for f in srcs]
            shard_of, row_of = canonical_order(provs, keys)
            n = len(shard_of)
            counts[table] = n
            datasets = [d for d in datasets if d in srcs[0]]  # the crops layout has no "nodule" dataset
            if not datasets:
                parts = [np.arange(n)] * len(outputs)
            else:
                mixed = shuffle and n > 1
                order = keyed_rng(seed, "shuffle", mode, table, *(o.name for o in outputs)).permutation(n) if mixed else np.arange(n)
                parts = np.array_split(order, len(outputs))
            for dst, part in zip(dsts, parts):
                prov = _gather(provs, shard_of[part], row_of[part])
                dst.create_dataset(f"provenance/{table}", data=prov)
                for name in datasets:
                    _copy_rows([f[name] for f in srcs], dst, name, shard_of[part], row_of[part])
                if crops and table == "nodule":
                    counts["nodule_crop"] = _merge_crops(srcs, dst, prov)
        for i, dst in enumerate(dsts):
            for k, v in (attrs or {}).items():
                dst.attrs[k] = v
            dst.attrs["ctpatch_version"] = ctpatch.__version__
            dst.attrs["part"] = i
            dst.attrs["parts"] = len(dsts)
            dst.attrs["shuffled"] = bool(shuffle)
    return counts


def _copy_rows(srcs: list, dst: h5py.File, name: str, shard_of: np.ndarray, row_of: np.ndarray) -> h5py.Dataset:
    """``dst[name][i] = srcs[shard_of[i]][row_of[i]]``, chunk by chunk as compressed bytes."""
    ref = srcs[0]
    out = create_patch_dataset(dst, name, ref.shape[1:], ref.dtype, codec_of(ref))
    for key, value in ref.attrs.items():
        if key not in out.attrs:
            out.attrs[key] = value
    out.resize(len(row_of), axis=0)
    for k in np.unique(shard_of):  # one call per shard: copy_chunks checks its pair of datasets once
        dst_rows = np.flatnonzero(shard_of == k)
        copy_chunks(srcs[k], out, row_of[dst_rows], dst_rows=dst_rows)
    return out


def _gather(tables: list[np.ndarray], shard_of: np.ndarray, row_of: np.ndarray) -> np.ndarray:
    """The rows ``tables[shard_of[i]][row_of[i]]`` as one array."""
    every = np.concatenate(tables)
    return every[np.cumsum([0] + [len(t) for t in tables])[:-1][shard_of] + row_of]


def _merge_crops(srcs: list, dst: h5py.File, prov: np.ndarray) -> int:
    """Crops layout: copy the crops the nodule patches ``prov`` of this part need, in canonical
    order, and write ``nodule_view`` (crop row and start inside it, aligned with ``prov``)."""
    crops = [f["provenance/nodule_crop"][...] for f in srcs]
    shard_of, row_of = canonical_order(crops, ("scan_index", "nodule_index"))
    table = _gather(crops, shard_of, row_of)
    patch_keys = np.stack([prov["scan_index"], prov["nodule_index"]], axis=1) if len(prov) else np.zeros((0, 2), int)
    crop_keys = np.stack([table["scan_index"], table["nodule_index"]], axis=1)
    used = np.unique(match_crops(patch_keys, crop_keys))  # canonical positions of the crops this part needs
    table, shard_of, row_of = table[used], shard_of[used], row_of[used]
    dst.create_dataset("provenance/nodule_crop", data=table)
    out = _copy_rows([f["nodule_crop"] for f in srcs], dst, "nodule_crop", shard_of, row_of)
    crop_row = match_crops(patch_keys, crop_keys[used])
    starts = view_starts(prov["centre_voxel"], table["start_voxel"][crop_row], int(out.attrs["patch_edge"]), out.shape[1])
    dst.create_dataset("nodule_view", data=np.concatenate([crop_row[:, None], starts], axis=1).astype(np.int32))
    return len(used)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ctpatch.merge", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=sorted(GROUPS), required=True)
    ap.add_argument("--shards-dir", required=True)
    ap.add_argument("--out", nargs="+", required=True, help="one or more files (nsplit = their number)")
    ap.add_argument("--group", default="", help="the subset or patient, recorded as the file's 'group' attribute")
    ap.add_argument("--settings-file", required=True,
                    help="settings of scope 'patches': seed, output.shuffle; recorded as the file's 'settings' attribute")
    args = ap.parse_args(argv)
    try:
        s = read_settings(args.settings_file, scope="patches")
        counts = merge(args.shards_dir, args.out, args.mode, s["seed"], s["output"]["shuffle"],
                       {"settings": json.dumps(s, sort_keys=True), "mode": args.mode, "seed": s["seed"],
                        "group": args.group})
    except (MergeError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"merged {counts} into {', '.join(args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
