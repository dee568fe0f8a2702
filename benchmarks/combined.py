"""Reading the LDCT combined file (virtual datasets over per-patient files) against a plain file.

    python benchmarks/combined.py           # 5 repetitions
    python benchmarks/combined.py --quick   # 2 repetitions, one codec

The patches are real: the p55 float16 grid of every slice pair under ``../shared/data/ldct``
(input and target, with the 0.8/0.6 copies, as ``codecs.py --ldct``), repeated 3 x and
written as 12 "patient" files with ctpatch's chunking (one patch per chunk) and codec.  For each
codec, four files hold the same rows:

* ``plain``: one real file, rows in patient order;
* ``combined``: ``ctpatch.ldct.combine`` over the patient files, in patient order (no shuffle);
* ``copy shuffled``: ``ctpatch.ldct.combine`` with ``shuffle`` and ``how="copy"``: one real file,
  rows in the combined shuffled order, the per-patient chunks copied as compressed bytes (what
  ``output.combined: copy`` writes; "combine s" is its writing time);
* ``combined shuffled``: ``ctpatch.ldct.combine`` with ``shuffle`` (one virtual mapping per row).

Reads of ``input`` (the files were just written: the page cache holds them, so this measures
HDF5 and decompression, not the disk): the whole dataset (``f['input'][:]``, how the LDCT
reference's training code reads), consecutive 64-row slices (how a CASED-style pool reads; the
shuffled combined file only over its first 20 slices, it is slow), and 500 random single rows.
Printed: patches/s (medians) and the ratios combined / plain.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402


def sample_ldct_patches() -> np.ndarray:
    """benchmarks/codecs.py's LDCT sample (loaded by path: ``codecs`` is also a stdlib module)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_codecs", Path(__file__).with_name("codecs.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.sample_ldct_patches()


PATIENTS = 12
REPEAT = 3


def write_patients(folder: Path, patches: np.ndarray, codec: str) -> list[Path]:
    from ctpatch.ldct.job import pair_dtype, patch_dtype
    from ctpatch.store.codecs import create_patch_dataset

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, part in enumerate(np.array_split(patches, PATIENTS)):
        path = folder / f"P{k:03d}.h5"
        with h5py.File(path, "w") as f:
            for name in ("input", "target"):
                ds = create_patch_dataset(f, name, part.shape[1:], part.dtype, codec)
                ds.resize(len(part), axis=0)
                for i in range(0, len(part), 8):  # as ShardWriter: 8 patches per write
                    ds[i : i + 8] = part[i : i + 8]
            prov = np.zeros(len(part), patch_dtype(8, 16))
            prov["patient"], prov["patch_index"] = f"P{k:03d}".encode(), np.arange(len(part))
            f.create_dataset("provenance/patch", data=prov)
            f.create_dataset("provenance/pair", data=np.zeros(1, pair_dtype(8, 16)))
            f.attrs.update(mode="ldct", settings="{}")
        paths.append(path)
    return paths


def write_plain(path: Path, patches: np.ndarray, codec: str) -> None:
    from ctpatch.store.codecs import create_patch_dataset

    with h5py.File(path, "w") as f:
        ds = create_patch_dataset(f, "input", patches.shape[1:], patches.dtype, codec)
        ds.resize(len(patches), axis=0)
        for i in range(0, len(patches), 8):
            ds[i : i + 8] = patches[i : i + 8]


def read_whole(path: Path) -> float:
    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        n = len(f["input"][:])
    return n / (time.perf_counter() - t)


def read_slices(path: Path, limit: int | None) -> float:
    t = time.perf_counter()
    n = 0
    with h5py.File(path, "r") as f:
        ds = f["input"]
        stop = ds.shape[0] if limit is None else min(ds.shape[0], 64 * limit)
        for s in range(0, stop, 64):
            n += len(ds[s : s + 64])
    return n / (time.perf_counter() - t)


def read_random(path: Path, rows: np.ndarray) -> float:
    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        ds = f["input"]
        for i in rows:
            ds[int(i)]
    return len(rows) / (time.perf_counter() - t)


def main() -> None:
    ap = C.arg_parser(__doc__)
    args = ap.parse_args()
    reps = C.reps_of(args)
    from ctpatch.ldct.combine import combine

    codecs = ["blosc2-lz4"] if args.quick else ["blosc2-lz4", "gzip"]
    patches = np.concatenate([sample_ldct_patches()] * REPEAT)
    print(
        f"{len(patches)} patches {patches.shape[1:]} {patches.dtype} in {PATIENTS} patient files; {reps} repetitions",
        flush=True,
    )
    rows, builds = [], {}
    with C.Workdir(args.workdir) as work:
        for codec in codecs:
            base = work / codec
            sources = write_patients(base / "patches", patches, codec)
            files = {
                "plain": base / "plain.h5",
                "combined": base / "combined" / "all.h5",
                "copy shuffled": base / "combined" / "copy.h5",
                "combined shuffled": base / "combined" / "shuf.h5",
            }
            write_plain(files["plain"], patches, codec)
            for name, shuffle, how in (
                ("combined", False, "virtual"),
                ("combined shuffled", True, "virtual"),
                ("copy shuffled", True, "copy"),
            ):
                t = time.perf_counter()
                counts = combine(sources, [files[name]], seed=0, shuffle=shuffle, how=how)
                builds[f"{codec} {name}"] = {
                    "seconds": time.perf_counter() - t,
                    "mappings": counts["mappings_per_part"][0],
                }
            rng = np.random.default_rng(0)
            res = {name: {"whole": [], "slices": [], "random": []} for name in files}
            for rep in range(reps):
                order = list(files) if rep % 2 == 0 else list(files)[::-1]
                picks = rng.integers(0, len(patches), 500)
                for name in order:
                    path = files[name]
                    res[name]["whole"].append(read_whole(path))
                    res[name]["slices"].append(read_slices(path, 20 if name == "combined shuffled" else None))
                    res[name]["random"].append(read_random(path, picks))
                print(f"{codec}: rep {rep + 1}/{reps} done", flush=True)
            med = {n: {k: C.median(v) for k, v in r.items()} for n, r in res.items()}
            for name in files:
                ref = med["copy shuffled" if "shuffled" in name else "plain"]
                rows.append(
                    {
                        "codec": codec,
                        "file": name,
                        **{k: med[name][k] for k in ("whole", "slices", "random")},
                        **{f"r_{k}": med[name][k] / ref[k] for k in ("whole", "slices", "random")},
                        "build_s": builds.get(f"{codec} {name}", {}).get("seconds", float("nan")),
                        "mappings": builds.get(f"{codec} {name}", {}).get("mappings", 0),
                    }
                )
    t = C.table(
        rows,
        [
            ("codec", "codec", ""),
            ("file", "file", ""),
            ("whole", "[:] patches/s", ".0f"),
            ("slices", "64-slices patches/s", ".0f"),
            ("random", "random 1-row /s", ".0f"),
            ("r_whole", "[:] vs plain", ".2f"),
            ("r_slices", "slices vs plain", ".2f"),
            ("r_random", "random vs plain", ".2f"),
            ("build_s", "combine s", ".1f"),
            ("mappings", "mappings", ""),
        ],
        f"Combined (virtual) vs plain files, {len(patches)} LDCT patches (medians of {reps}; "
        "ratios against the real file of the same order: plain, or copy shuffled)",
    )
    C.write_results("combined", args, {"patches": int(len(patches)), "summary": rows, "table": t})


if __name__ == "__main__":
    main()
