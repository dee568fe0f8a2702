"""Measurements on a small sample: compressed sizes, the extraction's compression and single write,
verification and start-up times, the sample extractions of both modes (nothing is guessed).

Both samples run the workflow's own steps (conversion, labels, the extraction's job, encoder and
writer, verification's checks) on a few patches and time them; nothing of the pipeline is written again
here.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.core.geometry import VolumeGrid
from ctpatch.report.plan.inputs import Scan
from ctpatch.settings import choices
from ctpatch.settings.types import Config, LdctPatches
from ctpatch.store.h5 import h5py

#: the fewest sample patches a plan measures (half of each kind)
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
def luna_sample(config: Config, scans: list[Scan], ann: pd.DataFrame, workdir: Path, n: int) -> dict:
    """Measure sizes and times on ``n`` patches of one scan by running the workflow's own steps on it.

    The scan is the smallest one with nodules (demo: synthesized and written as the demo step writes
    it).  It goes through :func:`ctpatch.luna16.convert.convert` (read, resample, normalize, on one
    thread as the convert rule runs), the labels (:func:`ctpatch.luna16.labels.nodules_of_scan`,
    :func:`~ctpatch.luna16.labels.label_volume`) and the extraction's job
    (:class:`ctpatch.luna16.job.Job` from the files, in the full layout), which cuts ``n // 2`` nodule
    patches and the rest negatives; the patches are then compressed by the extraction's chunk encoder
    and written by its single writer, and the file is checked as verification checks it.  Nothing of
    the pipeline is re-implemented here: only the clock is.
    """
    from dataclasses import asdict, replace

    import SimpleITK as sitk

    from ctpatch.engine.blocks import Unit
    from ctpatch.io.mhd import read_image
    from ctpatch.luna16.convert import convert
    from ctpatch.luna16.job import Job
    from ctpatch.luna16.labels import TABLE_COLUMNS, label_volume, nodules_of_scan
    from ctpatch.settings import luna16_settings
    from ctpatch.settings.types import LunaConvert, LunaPatches, build
    from ctpatch.store.atomic import save_npy, write_json
    from ctpatch.store.sink import MemorySink
    from ctpatch.store.writer import BlockSink, ChunkEncoder, PatchFileWriter

    luna = config.luna16
    out_s = luna.output
    counts = ann.groupby("seriesuid").size().to_dict()
    with_nodules = [s for s in scans if counts.get(s.uid, 0)]
    scan = min(with_nodules or scans, key=lambda s: (s.in_voxels, s.uid))
    # the image patches as the full layout stores them; negatives drawn at random (no candidates table here)
    settings = build(LunaPatches, luna16_settings(asdict(config)))
    negatives = replace(settings.negatives, strategy="random") if settings.negatives.strategy == "candidates" else None
    settings = replace(
        settings, output=replace(settings.output, layout="full"), negatives=negatives or settings.negatives
    )
    seconds: dict = {}
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="ctpatch-plan-") as tmp:
        tmp = Path(tmp)
        path = scan.path
        if scan.plan is not None:  # the demo step's work on this scan
            from ctpatch.io.mhd import write_scan
            from ctpatch.luna16.demo import synthesize

            t = time.perf_counter()
            hu = synthesize(scan.plan, config.seed, config.demo.noise_hu)
            seconds["synthesize"] = time.perf_counter() - t
            t = time.perf_counter()
            path = tmp / f"{scan.uid}.mhd"
            write_scan(path, hu, scan.grid)
            seconds["write_scan"] = time.perf_counter() - t
            del hu
        t = time.perf_counter()
        read_image(path)
        seconds["read"] = time.perf_counter() - t

        # convert_mhd (threads: 1): the time per voxel is one core's; the estimate runs one scan per core
        itk_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        try:
            volume, sidecar = convert(path, LunaConvert(luna.resample, luna.normalize, luna.plausibility))
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(itk_threads)
        out_voxels = int(volume.size)
        seconds["resample_per_voxel"] = sidecar["seconds"]["resample"] / out_voxels
        seconds["normalize_per_voxel"] = sidecar["seconds"]["normalize"] / out_voxels
        vol_dir, mask_dir = tmp / "volumes", tmp / "masks"
        t = time.perf_counter()
        save_npy(vol_dir / f"{scan.uid}.npy", volume)
        seconds["write_per_byte"] = (time.perf_counter() - t) / volume.nbytes
        write_json(vol_dir / f"{scan.uid}.json", sidecar)
        del volume

        t = time.perf_counter()  # make_labels
        grid = VolumeGrid.from_dict(sidecar["grid"])
        rows = nodules_of_scan(ann, grid, scan.subset, scan.uid, "annotations")
        save_npy(mask_dir / f"{scan.uid}.npy", label_volume(grid, rows))
        seconds["labels"] = time.perf_counter() - t

        # extract_patches: the job, from the files the rules give it
        inputs = {
            "sidecars": [vol_dir / f"{scan.uid}.json"],
            "masks_dir": mask_dir,
            "nodules": pd.DataFrame(rows, columns=TABLE_COLUMNS),
        }
        job = Job(settings, inputs)
        unit = Unit(scan.uid, 0)
        t = time.perf_counter()
        job.run(unit, MemorySink(job.specs().datasets), 0, 0)  # loads the volume and mask, draws the locations
        seconds["load_per_byte"] = (time.perf_counter() - t) / (5 * out_voxels)
        n_nod = job.nodule_patches[scan.uid]
        spans = [(0, min(n_nod, n // 2))]
        spans.append((n_nod, n_nod + min(job.negatives[scan.uid], n - spans[0][1])))
        sink = MemorySink(job.specs().datasets)
        t = time.perf_counter()
        for start, stop in spans:
            job.run(unit, sink, start, stop)
        done = sum(b - a for a, b in spans)
        seconds["cut_per_patch"] = (time.perf_counter() - t) / max(1, done)

        specs = job.specs()
        encoder = ChunkEncoder(specs, config.extract.buffer_patches)
        block_sink = BlockSink(encoder, config.extract.buffer_patches)
        t = time.perf_counter()
        for kind, (img_name, lab_name) in (
            ("nodule", ("nodule", "label_nodule")),
            ("non_nodule", ("non_nodule", "label_non_nodule")),
        ):
            for img, lab, row in zip(sink.patches[img_name], sink.patches[lab_name], sink.rows.get(kind, [])):
                block_sink.add(img_name, img)
                block_sink.add(lab_name, lab)
                block_sink.add_row(kind, row)
        block = block_sink.take(0)
        seconds["compress_per_patch"] = (time.perf_counter() - t) / max(1, done)
        kinds_n = {k: len(sink.rows.get(k, [])) for k in ("nodule", "non_nodule")}
        out_file = tmp / "sample.h5"
        t = time.perf_counter()
        writer = PatchFileWriter([out_file], specs, "luna16", settings.seed, out_s.shuffle, kinds_n, encoder=encoder)
        writer.write(block)
        writer.close()
        seconds["write_per_patch"] = (time.perf_counter() - t) / max(1, done)
        encoder.close()
        with h5py.File(out_file, "r") as f:
            stored = {k: _stored_mean(f[k]) for k in specs.datasets if f[k].shape[0]}
            chunk_total = sum(f[k].id.get_storage_size() for k in specs.datasets)
        overhead = (out_file.stat().st_size - chunk_total) / max(1, done)
        # verify: the checksum scan (the image datasets' rows are the labels' rows) and every label read
        per_row, per_file = _time_checksums(out_file, list(specs.datasets))
        t_read = _time_read([out_file], ["label_nodule", "label_non_nodule"])
        bricks = _volume_bricks(settings, inputs, unit) if out_s.layout == "volumes" else None
    seconds["verify_checksum_per_patch"] = per_row
    seconds["verify_checksum_per_file"] = per_file
    seconds["verify_read_labels_per_patch"] = t_read / max(1, done)
    arrays = {
        name: np.stack(sink.patches[name]) if sink.patches[name] else np.zeros((0, *shape), dtype)
        for name, (shape, dtype) in specs.datasets.items()
    }
    dtypes = LUNA_DTYPES if out_s.dtype == "float64" else LUNA_DTYPES[:2]
    alternatives = _compressed_sizes(arrays, dtypes, COMPRESSED)
    volume_bytes = None
    if bricks is not None:  # the volumes layout: stored bytes per voxel of the scan's own bricks
        voxels = bricks[0].size
        volume_bytes = {
            f"{d}/{c}": v["volume_brick"] / voxels
            for (d, c), v in _compressed_sizes({"volume_brick": bricks}, dtypes, COMPRESSED).items()
        }
    seconds["sample_total"] = time.perf_counter() - t_all
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
        "volume_bytes_per_voxel": volume_bytes,
        "seconds": seconds,
    }


def _volume_bricks(settings, inputs: dict, unit, k: int = 16) -> np.ndarray:
    """``k`` bricks of the sample scan spread over its volume, cut by the job in the volumes layout, as stored."""
    from dataclasses import replace

    from ctpatch.luna16.job import Job
    from ctpatch.store.sink import MemorySink

    vjob = Job(replace(settings, output=replace(settings.output, layout="volumes")), inputs)
    n = vjob.scan_items[unit.key]
    sink = MemorySink(vjob.specs().datasets)
    for i in np.unique(np.linspace(0, n - 1, min(k, n)).round().astype(int)):
        vjob.run(unit, sink, int(i), int(i) + 1)
    return np.stack(sink.patches["volume_brick"])


# ---------------------------------------------------------------------------------------- LUNA16 plan
def _dtype_ok(settings: LdctPatches, dtype: str) -> bool:
    from dataclasses import asdict, replace

    from ctpatch.settings import ldct_job

    try:
        ldct_job(asdict(replace(settings, output=replace(settings.output, dtype=dtype))))
        return True
    except ValueError:
        return False


def ldct_sample(settings: LdctPatches, selected_pairs: list, n: int, buffer: int) -> dict:
    """Extract up to ``n`` pairs (of different patients first) as the workflow does (``ctpatch.engine.run.extract``
    on one rank, the final part files written once); measure them and the read that verification makes."""
    from ctpatch.engine.run import extract
    from ctpatch.ldct.job import Job
    from ctpatch.ldct.pairing import pair_table

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
        # the pairing's own table of the chosen pairs (what the extraction reads)
        table = pd.concat([pair_table(patient, [p], np.ones(1, bool)) for patient, p in chosen], ignore_index=True)
        table["pair_index"] = np.arange(len(table))
        table.to_csv(tmp / "pairs.tsv", sep="\t", index=False)
        job = Job(settings, {"pairs": [str(tmp / "pairs.tsv")]})
        # the workflow's extraction on one rank: a counting pass when it shuffles or splits, then cut,
        # compress and write each chunk once into the final part file(s)
        parts = [tmp / f"sample{i}.h5" for i in range(job.parts)]
        t = time.perf_counter()
        extract(job, parts, buffer=buffer)
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
