"""Measurements on a small sample: compressed sizes, the extraction's compression and single write,
verification and start-up times, the sample extractions of both modes (nothing is guessed).

The LUNA16 and the LDCT sample each run the real steps on a few patches and time them; they share
the size, checksum and start-up measurements kept here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.report.plan.inputs import Scan
from ctpatch.settings import choices
from ctpatch.store.h5 import h5py

#: the fewest sample patches the time budget may leave (half of each kind)
MIN_SAMPLE = 8
LUNA_DTYPES = choices("luna16.output.dtype")
LDCT_DTYPES = choices("ldct.output.dtype")
#: the codecs of store.COMPRESSION, in the order the size table shows them
COMPRESSIONS = choices("luna16.output.compression")
#: LDCT: patches of the sample whose size is measured with every other dtype and codec
ALT_SAMPLE = 256
#: the codecs whose sizes are measured on the sample ("none" is computed)
COMPRESSED = tuple(c for c in COMPRESSIONS if c != "none")


def _stored_mean(ds: h5py.Dataset) -> float:
    """Mean stored (compressed) bytes of one patch of a one-patch-per-chunk dataset."""
    return ds.id.get_storage_size() / ds.shape[0] if ds.shape[0] else 0.0


def _compressed_sizes(patches: dict[str, np.ndarray], dtypes, compressions) -> dict:
    """Mean stored bytes per patch of each dataset for every (dtype, compression), in memory."""
    from ctpatch.store.codecs import create_patch_dataset

    out: dict = {}
    for dt in dtypes:
        for comp in compressions:
            with h5py.File(f"plan-{dt}-{comp}", "w", driver="core", backing_store=False) as f:
                sizes = {}
                for name, arr in patches.items():
                    if not len(arr):
                        continue
                    cast = arr if name.startswith("label") else arr.astype(dt)
                    ds = create_patch_dataset(f, name, arr.shape[1:], cast.dtype, comp)
                    ds.resize(len(arr), axis=0)
                    ds[...] = cast
                    sizes[name] = _stored_mean(ds)
            out[(dt, comp)] = sizes
    return out


def _time_checksums(path: Path, names, repeat: int = 8) -> tuple[float, float]:
    """(seconds per row, seconds per file) of ``ctpatch.store.verify.check_chunks`` over the datasets ``names``
    of ``path``: the Fletcher32 scan of every stored chunk, nothing decompressed.  Timed on the file and on
    a copy holding its chunks ``repeat`` times, so that the fixed cost of each call (its thread pool,
    the memory map) is told apart from the cost per chunk."""
    from ctpatch.store.codecs import codec_of, create_patch_dataset
    from ctpatch.store.verify import check_chunks

    big = path.with_name(path.stem + f".x{repeat}.h5")
    with h5py.File(path, "r") as src, h5py.File(big, "w") as dst:
        for name in names:
            ds = src[name]
            n, tail = ds.shape[0], (0,) * (ds.ndim - 1)
            out = create_patch_dataset(dst, name, ds.shape[1:], ds.dtype, codec_of(ds), rows=n * repeat)
            for r in range(n):
                mask, data = ds.id.read_direct_chunk((r, *tail))
                for k in range(repeat):
                    out.id.write_direct_chunk((k * n + r, *tail), data, mask)
    times, rows = [], 0
    for file in (path, big):
        with h5py.File(file, "r") as f:
            rows = f[names[0]].shape[0]
            t = time.perf_counter()
            for name in names:
                if check_chunks(f[name]):
                    raise ValueError(f"{file}:{name}: the sample's chunks fail their checksum")
            times.append(time.perf_counter() - t)
    big.unlink()
    n = rows // repeat
    per_row = max(0.0, (times[1] - times[0]) / max(1, rows - n))
    return per_row, max(0.0, times[0] - per_row * n)


def _time_read(paths, names) -> float:
    """Seconds to read every patch of the datasets ``names`` of the file(s) ``paths`` block by block
    (:func:`ctpatch.store.verify.read_blocks`, HDF5 checking each chunk's Fletcher32) and check their values,
    as LUNA16's label checks and LDCT's value checks do."""
    from ctpatch.store.verify import read_blocks

    t = time.perf_counter()
    for path in paths:
        with h5py.File(path, "r") as f:
            for name in names:
                for _, block in read_blocks(f[name]):
                    int((~np.isfinite(block)).sum())
                    if block.size:
                        float(np.nanmin(block)), float(np.nanmax(block))
    return time.perf_counter() - t


#: the modules each kind of workflow job imports (its start-up time and memory are measured)
STEP_IMPORTS = {
    "convert": "ctpatch.luna16.convert",
    "extract_luna": "ctpatch.engine.mpi, ctpatch.luna16.job, ctpatch.luna16.labels, ctpatch.luna16.verify, mpi4py.MPI",
    "extract_ldct": "ctpatch.engine.mpi, ctpatch.ldct.job, ctpatch.ldct.pairing, ctpatch.ldct.verify, mpi4py.MPI",
}


def measure_startup(steps) -> dict:
    """Seconds and peak RSS of a fresh Python process importing what each kind of job imports.

    Run one after the other (and after the sample), so that they do not slow each other down.
    """
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark over exec into ru_maxrss
    code = (
        "import time, resource; t = time.perf_counter(); import {mods}\n"
        "try:\n    kib = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "except (OSError, IndexError):\n    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(time.perf_counter() - t, kib)"
    )
    out = {}
    for step in steps:
        t = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, "-c", code.format(mods=STEP_IMPORTS[step])],
                capture_output=True,
                text=True,
                timeout=120,
                check=True,
            )
            _, rss = proc.stdout.split()[-2:]
            out[step] = {"seconds": time.perf_counter() - t, "rss_bytes": int(rss) * 1024}
        except (subprocess.SubprocessError, ValueError):
            out[step] = {"seconds": 0.0, "rss_bytes": 0}
    return out


# ---------------------------------------------------------------------------------------- LUNA16 sample
def luna_sample(config: dict, scans: list[Scan], ann: pd.DataFrame, workdir: Path, n: int, budget: float = 2.5) -> dict:
    """Measure compression, sizes and times on ``n`` patches of one real (or synthesized demo) scan.

    Resampling stops early once it has taken ``budget`` seconds and :data:`MIN_SAMPLE` patches are done
    (B-spline resampling of a 68³ patch takes a fraction of a second on a few cores).
    """
    import SimpleITK as sitk

    from ctpatch.core.nodules import (
        PatchLocation,
        cut_label,
        label_edge,
        nodule_locations,
        patch_offsets,
        random_centres,
    )
    from ctpatch.core.normalize import hu_window
    from ctpatch.core.rng import keyed_rng
    from ctpatch.io.mhd import read_image
    from ctpatch.luna16.convert import INTERPOLATORS
    from ctpatch.luna16.job import PROV_NEGATIVE, PROV_NODULE
    from ctpatch.luna16.labels import label_volume, nodules_of_scan
    from ctpatch.store.atomic import save_npy
    from ctpatch.store.writer import BlockSink, ChunkEncoder, PatchFileWriter, Specs

    luna = config["luna16"]
    patch, neg, out_s, rs, nm = luna["patch"], luna["negatives"], luna["output"], luna["resample"], luna["normalize"]
    size, pool = int(patch["size"]), int(patch["label_pool"])
    lab = label_edge(patch)
    counts = ann.groupby("seriesuid").size().to_dict()
    with_nodules = [s for s in scans if counts.get(s.uid, 0)]
    scan = min(with_nodules or scans, key=lambda s: (s.in_voxels, s.uid))
    t_all = time.perf_counter()
    seconds: dict = {}

    t = time.perf_counter()
    if scan.plan is not None:
        from ctpatch.io.mhd import write_scan
        from ctpatch.luna16.demo import synthesize

        hu = synthesize(scan.plan, config["seed"], float(config["demo"]["noise_hu"]))
        seconds["synthesize"] = time.perf_counter() - t
        with tempfile.TemporaryDirectory(prefix="ctpatch-plan-") as tmp:  # the demo writes it, convert reads it
            t = time.perf_counter()
            write_scan(Path(tmp) / "scan.mhd", hu, scan.grid)
            seconds["write_scan"] = time.perf_counter() - t
            del hu
            t = time.perf_counter()
            image = read_image(Path(tmp) / "scan.mhd")
            seconds["read"] = time.perf_counter() - t
    else:
        image = read_image(scan.path)
        seconds["read"] = time.perf_counter() - t
    lo = float(sitk.GetArrayViewFromImage(image).min())
    grid = scan.out

    t = time.perf_counter()
    a = ann[ann["seriesuid"] == scan.uid]
    rows = nodules_of_scan(a, grid, scan.subset, scan.uid, "annotations") if len(a) else []
    mask = label_volume(grid, rows)
    with tempfile.TemporaryDirectory(prefix="ctpatch-plan-") as tmp:
        save_npy(Path(tmp) / "mask.npy", mask)
    seconds["labels"] = time.perf_counter() - t

    offsets = patch_offsets(patch)
    rng = keyed_rng(int(config["seed"]), "plan-sample", scan.uid)
    n_nod = n // 2 if rows else 0
    locs = []
    if rows:
        centres = np.array([[r["voxel_z"], r["voxel_y"], r["voxel_x"]] for r in rows])
        every = list(nodule_locations(centres, offsets, size))
        pick = np.unique(np.linspace(0, len(every) - 1, n_nod).round().astype(int))
        locs += [("nodule", every[i][2]) for i in pick]
    n_neg = n - len(locs)
    if neg["strategy"] == "candidates" and scan.plan is not None and scan.plan.candidates:
        vox = grid.world_to_voxel(np.asarray(scan.plan.candidates, dtype=float))
        centres = [v[::-1] for v in vox if grid.contains_index(v)]
        take = rng.permutation(len(centres))[:n_neg]
        locs += [("non_nodule", PatchLocation(tuple(int(c) for c in centres[i]), size)) for i in take]
    locs += [
        ("non_nodule", PatchLocation(tuple(int(v) for v in c), size))
        for c in random_centres(grid.shape_zyx, n - len(locs), rng)
    ]
    # alternate the kinds, so that a sample cut short by the time budget keeps both
    nod_l, neg_l = [x for x in locs if x[0] == "nodule"], [x for x in locs if x[0] != "nodule"]
    locs = [x for pair in zip(nod_l, neg_l) for x in pair] + nod_l[len(neg_l) :] + neg_l[len(nod_l) :]

    # resample each patch's own piece of the output grid (the same points the full conversion samples)
    interp = INTERPOLATORS[rs["interpolator"]] if rs["enabled"] else sitk.sitkNearestNeighbor
    margin = 8 if rs["interpolator"] == "bspline" else 2
    patches: dict[str, list] = {"nodule": [], "label_nodule": [], "non_nodule": [], "label_non_nodule": []}
    t_resample = t_norm = 0.0
    in_size = np.asarray(scan.grid.size)
    done = []
    # one SimpleITK thread, as convert_mhd runs (threads: 1): the time per voxel is a core's, and
    # the wall-time estimate runs one scan per core
    itk_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
    for kind, loc in locs:
        if t_resample > budget and len(done) >= min(len(locs), MIN_SAMPLE):
            break
        done.append((kind, loc))
        start_xyz = loc.start_zyx[::-1]
        corners = np.array(
            [
                [start_xyz[0] + dx, start_xyz[1] + dy, start_xyz[2] + dz]
                for dx in (0, size - 1)
                for dy in (0, size - 1)
                for dz in (0, size - 1)
            ],
            dtype=float,
        )
        src = scan.grid.world_to_index(grid.index_to_world(corners))
        lo_i = np.clip(np.floor(src.min(axis=0)).astype(int) - margin, 0, in_size)
        hi_i = np.clip(np.ceil(src.max(axis=0)).astype(int) + margin + 1, 0, in_size)
        t = time.perf_counter()
        if np.all(hi_i > lo_i):
            crop = image[int(lo_i[0]) : int(hi_i[0]), int(lo_i[1]) : int(hi_i[1]), int(lo_i[2]) : int(hi_i[2])]
            sub = sitk.Resample(
                crop,
                [size] * 3,
                sitk.Transform(),
                interp,
                list(grid.index_to_world(start_xyz)),
                list(grid.spacing),
                list(grid.direction),
                lo,
                sitk.sitkFloat32,
            )
            hu_zyx = sitk.GetArrayFromImage(sub)
        else:
            hu_zyx = np.full((size,) * 3, lo, dtype=np.float32)
        t_resample += time.perf_counter() - t
        t = time.perf_counter()
        vol = hu_window(hu_zyx, nm["hu_min"], nm["hu_max"], nm["clip"], nm["center"])
        t_norm += time.perf_counter() - t
        patches[kind].append(np.ascontiguousarray(vol.transpose(2, 1, 0)[..., None], dtype=out_s["dtype"]))
        patches["label_" + kind].append(cut_label(mask, loc, pool))
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_threads)
    locs = done
    n_vox = len(locs) * size**3
    seconds["resample_per_voxel"] = t_resample / n_vox
    seconds["normalize_per_voxel"] = t_norm / n_vox

    # loading a converted volume and cutting from it, the way the extraction does
    with tempfile.TemporaryDirectory(prefix="ctpatch-plan-") as tmp:
        tmp = Path(tmp)
        box = np.full((2 * size,) * 3, 0.1, dtype=np.float32)
        t = time.perf_counter()
        save_npy(tmp / "v.npy", box)
        seconds["write_per_byte"] = (time.perf_counter() - t) / box.nbytes
        t = time.perf_counter()
        v, m, cut = _extraction_cutter(tmp / "v.npy", np.zeros(box.shape, dtype=bool), out_s["dtype"], pool)
        seconds["load_per_byte"] = (time.perf_counter() - t) / box.nbytes
        centre = PatchLocation((size, size, size), size)
        t = time.perf_counter()
        for _ in locs:
            cut(v, m, centre)
        seconds["cut_per_patch"] = (time.perf_counter() - t) / len(locs)
        del v, m

        arrays = {
            k: np.stack(v)
            if v
            else np.zeros(
                (0, *((size,) * 3 if "label" not in k else (lab,) * 3), 1 if "label" not in k else 2), np.float32
            )
            for k, v in patches.items()
        }
        # the extraction's write path: the ranks compress chunks (BlockSink), rank 0 writes them once, each
        # at its final (seeded-shuffle) row (PatchFileWriter); both timed, the write being rank 0's alone
        specs = Specs(
            {
                "nodule": ((size,) * 3 + (1,), np.dtype(out_s["dtype"])),
                "label_nodule": ((lab,) * 3 + (2,), np.dtype("float32")),
                "non_nodule": ((size,) * 3 + (1,), np.dtype(out_s["dtype"])),
                "label_non_nodule": ((lab,) * 3 + (2,), np.dtype("float32")),
            },
            {"nodule": PROV_NODULE, "non_nodule": PROV_NEGATIVE},
            {"nodule": ("nodule", "label_nodule"), "non_nodule": ("non_nodule", "label_non_nodule")},
            out_s["compression"],
        )
        buf = int(config["extract"]["buffer_patches"])
        rows = {"nodule": np.zeros(1, PROV_NODULE)[0], "non_nodule": np.zeros(1, PROV_NEGATIVE)[0]}
        encoder = ChunkEncoder(specs, buf)
        t = time.perf_counter()
        sink = BlockSink(encoder, buf)
        for k in ("nodule", "non_nodule"):
            for img, labp in zip(arrays[k], arrays["label_" + k]):
                sink.add(k, img)
                sink.add("label_" + k, labp)
                sink.add_row(k, rows[k])
        block = sink.take(0)
        seconds["compress_per_patch"] = (time.perf_counter() - t) / len(locs)
        out_file = tmp / "sample.h5"
        t = time.perf_counter()
        writer = PatchFileWriter(
            [out_file],
            specs,
            "luna16",
            int(config["seed"]),
            bool(out_s["shuffle"]),
            {k: len(arrays[k]) for k in ("nodule", "non_nodule")},
            encoder=encoder,
        )
        writer.write(block)
        writer.close()
        seconds["write_per_patch"] = (time.perf_counter() - t) / len(locs)
        encoder.close()
        with h5py.File(out_file, "r") as f:
            stored = {k: _stored_mean(f[k]) for k in specs.datasets if f[k].shape[0]}
            chunk_total = sum(f[k].id.get_storage_size() for k in specs.datasets)
        overhead = (out_file.stat().st_size - chunk_total) / len(locs)
        # verify: the checksum scan (the image datasets' rows are the labels' rows) and every label read
        per_row, per_file = _time_checksums(out_file, list(specs.datasets))
        t_read = _time_read([out_file], ["label_nodule", "label_non_nodule"])
    seconds["verify_checksum_per_patch"] = per_row
    seconds["verify_checksum_per_file"] = per_file
    seconds["verify_read_labels_per_patch"] = t_read / len(locs)
    dtypes = LUNA_DTYPES if out_s["dtype"] == "float64" else LUNA_DTYPES[:2]
    alternatives = _compressed_sizes(arrays, dtypes, COMPRESSED)
    seconds["sample_total"] = time.perf_counter() - t_all
    kinds_n = {k: len(patches[k]) for k in ("nodule", "non_nodule")}
    if not kinds_n["nodule"]:  # no nodule in any planned scan: nodule patches would look like negatives
        stored["nodule"], stored["label_nodule"] = stored["non_nodule"], stored["label_non_nodule"]
        for v in alternatives.values():
            v["nodule"], v["label_nodule"] = v["non_nodule"], v["label_non_nodule"]
    return {
        "scan": scan.uid,
        "subset": scan.subset,
        "source": str(scan.path) if scan.path else "demo (synthesized)",
        "patches": kinds_n,
        "stored_bytes_per_patch": stored,
        "chunk_overhead_bytes_per_patch": overhead,
        "alternatives": {f"{d}/{c}": v for (d, c), v in alternatives.items()},
        "seconds": seconds,
    }


def _extraction_cutter(npy: Path, mask_zyx: np.ndarray, dtype, pool: int):
    """(volume, mask, cut(volume, mask, loc)) as the LUNA16 job reads and cuts them: the volume and the
    mask in memory, (x, y, z)."""
    from ctpatch.core.labels import label_patch
    from ctpatch.core.nodules import crop_mask_xyz, cut_image_xyz
    from ctpatch.luna16.job import load_xyz

    vol = load_xyz(npy)
    mask = np.ascontiguousarray(mask_zyx.transpose(2, 1, 0))
    return vol, mask, lambda v, m, loc: (cut_image_xyz(v, loc, 0.0, dtype), label_patch(crop_mask_xyz(m, loc), pool))


# ---------------------------------------------------------------------------------------- LUNA16 plan
def _dtype_ok(settings: dict, dtype: str) -> bool:
    from ctpatch.settings import ldct_settings

    try:
        ldct_settings({**settings, "output": {**settings["output"], "dtype": dtype}})
        return True
    except ValueError:
        return False


def ldct_sample(settings: dict, selected_pairs: list, n: int) -> dict:
    """Extract up to ``n`` pairs (of different patients first) as the workflow does (``ctpatch.engine.run.extract``
    on one rank, the final part files written once); measure them and the read that verification makes."""
    from ctpatch.engine.run import extract
    from ctpatch.ldct.job import Job

    chosen, seen = [], set()
    for patient, p in selected_pairs:
        if patient not in seen and len(chosen) < n:
            chosen.append((patient, p))
            seen.add(patient)
    for item in selected_pairs:
        if len(chosen) >= n:
            break
        if item not in chosen:
            chosen.append(item)
    with tempfile.TemporaryDirectory(prefix="ctpatch-plan-") as tmp:
        tmp = Path(tmp)
        table = pd.DataFrame(
            [
                {
                    "patient": patient,
                    "pair_index": i,
                    "input_path": os.path.abspath(p.input.path),
                    "target_path": os.path.abspath(p.target.path),
                    "slice_z": "" if p.position_z is None else repr(float(p.position_z)),
                    "instance": "" if p.instance is None else int(p.instance),
                    "rows": p.input.rows,
                    "cols": p.input.cols,
                    "selected": True,
                }
                for i, (patient, p) in enumerate(chosen)
            ]
        )
        table.to_csv(tmp / "pairs.tsv", sep="\t", index=False)
        job = Job(settings, {"pairs": [str(tmp / "pairs.tsv")]})
        # the workflow's extraction on one rank: a counting pass when it shuffles or splits, then cut,
        # compress and write each chunk once into the final part file(s)
        parts = [tmp / f"sample{i}.h5" for i in range(job.parts)]
        t = time.perf_counter()
        extract(job, parts)
        t_pairs = time.perf_counter() - t
        with h5py.File(parts[0], "r") as f:
            summary = f["provenance/pair"][...]
        cut, kept, written = (int(summary[k].sum()) for k in ("patches_cut", "patches_kept", "patches_written"))
        store = {k: 0 for k in ("input", "target")}
        chunk_total, arrays = 0, {k: [] for k in ("input", "target")}
        for part in parts:
            with h5py.File(part, "r") as f:
                for k in store:
                    store[k] += f[k].id.get_storage_size()
                    arrays[k].append(f[k][...])
                chunk_total += sum(f[k].id.get_storage_size() for k in ("input", "target"))
        stored = {k: v / written if written else 0.0 for k, v in store.items()}
        arrays = {k: np.concatenate(v) for k, v in arrays.items()}
        overhead = (sum(part.stat().st_size for part in parts) - chunk_total) / max(1, written)
        t_verify = 0.0  # verification: the checksum scan of every chunk (the values come from the statistics)
        for part in parts:
            with h5py.File(part, "r") as f:
                n_rows = f["input"].shape[0]
            if n_rows:
                per_row, per_file = _time_checksums(part, ["input", "target"])
                t_verify += per_row * n_rows + per_file
    # alternatives from the float32 values of the stored patches (exact for float16 -> float32), on at most
    # ALT_SAMPLE of them, evenly spaced (a mean size per patch; measuring all of them would dominate the plan)
    rows = np.unique(np.linspace(0, max(0, written - 1), min(written, ALT_SAMPLE)).round().astype(int))
    alts = (
        _compressed_sizes(
            {k: v[rows].astype(np.float32) for k, v in arrays.items()},
            [d for d in LDCT_DTYPES if _dtype_ok(settings, d)],
            COMPRESSED,
        )
        if written
        else {}
    )
    return {
        "pairs": [f"{pt}/{Path(p.input.path).name}" for pt, p in chosen],
        "cut": cut,
        "kept": kept,
        "written": written,
        "keep_rate": kept / cut if cut else 1.0,
        "stored_bytes_per_patch": stored,
        "chunk_overhead_bytes_per_patch": overhead,
        "alternatives": {f"{d}/{c}": v for (d, c), v in alts.items()},
        "seconds_per_pair": t_pairs / max(1, len(chosen)),
        "verify_per_patch": t_verify / max(1, written),
    }


# ---------------------------------------------------------------------------------------- report
