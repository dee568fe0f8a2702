"""HDF5 codecs on real patch data: write MB/s, random single-patch read MB/s, compression ratio.

    python benchmarks/codecs.py          # patches of one full-size generated scan, 5 reps
    python benchmarks/codecs.py --quick  # small scan, 2 reps
    python benchmarks/codecs.py --ldct   # real LDCT p55 float16 patches (../shared/data/ldct), 5 reps

The patches are ctpatch's own: one generated 512² scan (~10 nodules) converted and extracted with
the default settings but no compression; the sample keeps the pipeline's mix (1 nodule patch :
3 negatives).  Each codec writes the image patches (68³ float32) into a fresh file with one-patch
chunks, 8 patches per write call (as ``ShardWriter``), then reads single patches in random order.
The reads hit the page cache (the file was just written): they measure decompression and HDF5,
not the disk.  Blosc2 comes from ``hdf5plugin`` (byte shuffle, 1 thread, as a rank would use it:
``ctpatch`` sets ``BLOSC_NTHREADS=1`` when imported, which ``sample_patches`` does first).  The schema
offers blosc2-zstd (level 1, the default), blosc2-lz4 (level 5), lzf, gzip (level 1) and none;
blosc2-zstd-5 is here for comparison only.  MB are 10⁶ bytes of raw float32.

``--ldct``: the patches are the LDCT mode's (p55 grid of every real slice pair under
``../shared/data/ldct``, input and target, with their 0.8/0.6 downscaled copies, float16, as
``config/ldct.yaml`` without rotation and blending).  ``same bytes`` says whether every
repetition wrote the same compressed chunk bytes (what byte-identical outputs need).
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def codecs() -> dict:
    out = {"none": {}, "lzf": {"compression": "lzf"}, "gzip-1": {"compression": "gzip", "compression_opts": 1}}
    try:
        import hdf5plugin
    except ImportError:
        print("hdf5plugin is not installed: Blosc2 codecs skipped (pip install hdf5plugin)")
        return out
    sh = hdf5plugin.Blosc2.SHUFFLE
    out["blosc2-lz4-5"] = dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=sh))
    out["blosc2-zstd-1"] = dict(hdf5plugin.Blosc2(cname="zstd", clevel=1, filters=sh))
    out["blosc2-zstd-5"] = dict(hdf5plugin.Blosc2(cname="zstd", clevel=5, filters=sh))
    return out


def sample_patches(work: Path, quick: bool) -> np.ndarray:
    demo = dict(
        C.QUICK_DEMO if quick else C.FULL_DEMO, scans_per_subset=1, nodules_per_scan=[3, 3] if quick else [10, 10]
    )
    root = work / "luna"
    C.make_data(root, demo)
    settings = C.luna_settings(root, output={"compression": "none", "shuffle": False})  # canonical order, as before
    vol, lab, out = work / "volumes", work / "labels", work / "subset0.h5"
    C.convert_scans(sorted((root / "subset0").glob("*.mhd")), vol, settings)
    C.make_labels("subset0", vol, root / "CSVFILES" / "annotations.csv", lab)
    C.extract(1, vol, lab, out, settings, work / "stats")
    n_nod = 60 if quick else 150
    with h5py.File(out, "r") as f:
        nod = f["nodule"][:n_nod]
        neg = f["non_nodule"][: 3 * len(nod)]
    out.unlink()
    return np.concatenate([nod, neg])


def sample_ldct_patches() -> np.ndarray:
    """p55 float16 patches of the real LDCT pairs (input and target), grid and copies as ctpatch cuts them."""
    from ctpatch.core.augment import downscale_copies
    from ctpatch.core.grid import cut_patch, grid_corners
    from ctpatch.io.dicom import read_pixels

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "ldct"
    if not root.is_dir():
        raise SystemExit(f"{root}: real LDCT data not found")
    out = []
    for patient in sorted(d for d in root.iterdir() if d.is_dir()):
        for kind in ("quarter_3mm_sharp_sorted", "full_3mm_sharp_sorted"):
            for path in sorted((patient / kind).glob("*.IMA")):
                for _, img in downscale_copies(read_pixels(path).astype(np.float32), (0.8, 0.6)):
                    fill = img.min()
                    out += [
                        cut_patch(img, (int(r), int(c)), 55, fill)[None].astype(np.float16)
                        for r, c in grid_corners(img.shape, 55, 8)
                    ]
    return np.stack(out)


def bench(patches: np.ndarray, kw: dict, path: Path, reads: int, rng) -> dict:
    t = time.perf_counter()
    with h5py.File(path, "w") as f:
        ds = f.create_dataset(
            "p",
            shape=(0, *patches.shape[1:]),
            maxshape=(None, *patches.shape[1:]),
            dtype=patches.dtype,
            chunks=(1, *patches.shape[1:]),
            **kw,
        )
        for i in range(0, len(patches), 8):
            block = patches[i : i + 8]
            ds.resize(i + len(block), axis=0)
            ds[i:] = block
    write = time.perf_counter() - t
    stored = os.path.getsize(path)
    idx = rng.integers(0, len(patches), reads)
    with h5py.File(path, "r") as f:
        ds = f["p"]
        ds[0]
        t = time.perf_counter()
        for i in idx:
            ds[int(i)]
        read = time.perf_counter() - t
        ok = np.array_equal(ds[int(idx[0])], patches[int(idx[0])])
        digest = hashlib.sha256()
        for i in range(ds.shape[0]):
            digest.update(ds.id.read_direct_chunk((i,) + (0,) * (ds.ndim - 1))[1])
    path.unlink()
    raw = patches.nbytes
    return {
        "write_mb_s": raw / 1e6 / write,
        "read_mb_s": reads * patches[0].nbytes / 1e6 / read,
        "ratio": raw / stored,
        "stored_bytes": stored,
        "lossless": bool(ok),
        "chunks_sha256": digest.hexdigest(),
    }


def main() -> None:
    ap = C.arg_parser(__doc__)
    ap.add_argument("--ldct", action="store_true", help="real LDCT p55 float16 patches instead of LUNA 68³ float32")
    args = ap.parse_args()
    reps = C.reps_of(args)
    with C.Workdir(args.workdir) as work:
        patches = sample_ldct_patches() if args.ldct else sample_patches(work, args.quick)
        print(
            f"{len(patches)} patches {patches.shape[1:]} {patches.dtype}, {patches.nbytes / 1e6:.0f} MB raw; {reps} repetitions",
            flush=True,
        )
        cs = codecs()
        res = {name: [] for name in cs}
        rng = np.random.default_rng(0)
        for rep in range(reps):
            for name, kw in list(cs.items()) if rep % 2 == 0 else list(cs.items())[::-1]:
                res[name].append(bench(patches, kw, work / f"{name}.h5", min(200, len(patches)), rng))
            print(f"rep {rep + 1}/{reps} done", flush=True)
    rows = []
    lzf = C.median([r["write_mb_s"] for r in res["lzf"]])
    for name, rs in res.items():
        w = C.median([r["write_mb_s"] for r in rs])
        rows.append(
            {
                "codec": name,
                "write": w,
                "read": C.median([r["read_mb_s"] for r in rs]),
                "ratio": C.median([r["ratio"] for r in rs]),
                "vs_lzf": w / lzf,
                "patch_s": w * 1e6 / patches[0].nbytes,
                "lossless": all(r["lossless"] for r in rs),
                "same_bytes": len({r["chunks_sha256"] for r in rs}) == 1,
            }
        )
    t = C.table(
        rows,
        [
            ("codec", "codec", ""),
            ("write", "write MB/s", ".0f"),
            ("read", "random 1-patch read MB/s", ".0f"),
            ("ratio", "ratio raw/stored", ".3f"),
            ("vs_lzf", "write vs lzf", ".2f"),
            ("patch_s", "write patches/s", ".0f"),
            ("lossless", "lossless", ""),
            ("same_bytes", "same bytes", ""),
        ],
        f"Codecs on {len(patches)} real {'LDCT 55² float16' if args.ldct else '68³ float32'} patches "
        f"(medians of {reps} repetitions)",
    )
    C.write_results(
        "codecs_ldct" if args.ldct else "codecs",
        args,
        {
            "patches": int(len(patches)),
            "summary": rows,
            "table": t,
            "repetitions": res,
            "codecs": {k: str(v) for k, v in codecs().items()},
        },
    )


if __name__ == "__main__":
    main()
