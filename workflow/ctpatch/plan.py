"""Pre-flight plan of a run: counts, output sizes, memory and time, from headers and tables only.

Per LUNA16 subset or LDCT patient and in total: scans or slice pairs, nodules, patches by kind,
the output size for the configured dtype and compression and for the alternatives, the disk the
intermediate files take, the peak memory of each kind of job (one MPI rank of the extraction
included) and an estimated time.

Counts come from the same functions the extraction uses (``expected_counts``,
``negatives_per_scan``; ``expected_cut`` and the random_n selection for LDCT), so they are exact
-- except LDCT patches behind an air threshold, which depend on pixels and are estimated from
the sample.  Per scan, only its ``.mhd`` header is read (and its ``.raw`` size checked with one
``stat``); per LDCT slice only the DICOM header.  Demo data (``luna16.root: demo``) is planned
with :func:`ctpatch.demo.plan_scans`, without voxels.

Sizes and times are measured on a small sample, never guessed:

* LUNA16: the smallest scan with a nodule is read (or synthesized, for the demo); ``--sample``
  patches (half at its nodules' shifts, half negatives as the strategy draws them) are resampled
  with the configured interpolator onto their own piece of the output grid, normalized, cut,
  labelled and written with the configured filter through the workflow's ``ShardWriter``, then
  compressed with every other dtype and filter, copied chunk by chunk (merge) and read back
  (verify).  Each step is timed; time per voxel or per patch is scaled by the planned voxels and
  patches.  Resampling stops early after ``--sample-seconds`` (at least 8 patches are made).
* LDCT: two slice pairs (of different patients) are extracted with the workflow's ``Job.run``;
  the air-threshold keep rate, compressed sizes and time per pair come from them.
* The start-up time and memory of a fresh Python process of each kind of job is measured.

Memory per job is computed from the largest volume or slice with the layout of each step
(e.g. convert: int16 input + float32 resampled, plus double B-spline coefficients of the input
for ``bspline``; an extraction rank: the float32 volume and bool mask of its largest scan, plus the
patch buffers) on top of the measured footprint of a Python process with ctpatch imported.

Usage: ``python -m ctpatch.plan --configfile config.yaml [more.yaml ...] [--json out.json]
[--text out.txt] [--workdir DIR] [--cores N] [--sample N | --no-sample]``.  The workflow's rule
passes ``--settings-file`` (scope ``plan``: the validated config with defaults, ``--configfile``
and ``--config``, :mod:`ctpatch.config`) instead of ``--configfile``.
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctpatch.h5 import h5py
from ctpatch.config import choices, load_config, read_settings
from ctpatch.discover import ldct_patients, luna16_scans, subset_number
from ctpatch.geometry import VolumeGrid, resampled_grid

#: the fewest sample patches the time budget may leave (half of each kind)
MIN_SAMPLE = 8
LUNA_DTYPES = choices("luna16.output.dtype")
LDCT_DTYPES = choices("ldct.output.dtype")
#: the codecs of store.COMPRESSION, in the order the size table shows them
COMPRESSIONS = choices("luna16.output.compression")
#: the codecs whose sizes are measured on the sample ("none" is computed)
COMPRESSED = tuple(c for c in COMPRESSIONS if c != "none")


class PlanError(ValueError):
    """Inputs the plan cannot read; the message names the file or key."""


def _path(p, workdir: Path) -> Path:
    p = Path(p)
    return p if p.is_absolute() else workdir / p


# ---------------------------------------------------------------------------------------- LUNA16 inputs
@dataclass
class Scan:
    subset: str
    uid: str
    grid: VolumeGrid          # source grid, (x, y, z)
    out: VolumeGrid           # converted grid
    element_bytes: int
    path: Path | None         # .mhd (None for demo scans, which do not exist yet)
    plan: object = None       # demo ScanPlan

    @property
    def in_voxels(self) -> int:
        return int(np.prod(self.grid.size, dtype=np.int64))

    @property
    def out_voxels(self) -> int:
        return int(np.prod(self.out.size, dtype=np.int64))


def luna_inputs(config: dict, workdir: Path) -> tuple[list[Scan], pd.DataFrame, list[str], str]:
    """The scans of the selected subsets (headers only), the annotations, warnings, and the root."""
    from ctpatch.io.mhd import ELEMENT_BYTES, ScanError, read_header
    from ctpatch.io.tables import read_annotations

    luna, warnings = config["luna16"], []
    rs = luna["resample"]

    def out_grid(g):
        return resampled_grid(g, rs["spacing_mm"]) if rs["enabled"] else g

    scans: list[Scan] = []
    found = luna16_scans(config, workdir)  # the scans the workflow finds (DiscoveryError: a ValueError)
    warnings += found.warnings
    if luna["root"] == "demo":
        from ctpatch.demo import plan_scans

        root = f"{config['results']}/demo/luna16"
        rows = []
        for p in plan_scans(config["demo"], config["seed"]):
            scans.append(Scan(p.subset, p.series_uid, p.grid, out_grid(p.grid), 2, None, p))
            rows += [(p.series_uid, *n.world, n.diameter_mm) for n in p.nodules]
        ann = pd.DataFrame(rows, columns=["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"])
        ann.insert(0, "row", np.arange(len(ann)) + 2)
    else:
        root = luna["root"]
        rpath = _path(root, workdir)
        for d, uids in ((rpath / s, uids) for s, uids in found.scans.items()):
            for mhd in (d / f"{uid}.mhd" for uid in uids):
                try:
                    h = read_header(mhd)
                except ScanError as exc:
                    warnings.append(str(exc))
                    continue
                if not h.compressed:
                    want = int(np.prod(h.grid.size)) * ELEMENT_BYTES[h.element_type]
                    have = h.data_file.stat().st_size if h.data_file.is_file() else None
                    if have != want:
                        warnings.append(f"{h.data_file}: {'missing' if have is None else f'{have} bytes'}, "
                                        f"header declares {want}")
                scans.append(Scan(d.name, h.series_uid, h.grid, out_grid(h.grid), ELEMENT_BYTES[h.element_type], mhd))
        ann = read_annotations(_path(luna["annotations"], rpath), luna.get("duplicate_annotations", "fail"))
    wanted = list(found.scans)
    missing = [s for s, uids in found.scans.items() if not uids]
    if missing:
        warnings.append(f"subsets without scans: {missing}")
    unknown = sorted(set(ann["seriesuid"]) - {s.uid for s in scans})
    if unknown:
        warnings.append(f"{len(unknown)} annotated series have no scan under the root (luna16.unknown_series: "
                        f"{luna['unknown_series']}), e.g. {unknown[0]}")
    scans = sorted((s for s in scans if s.subset in wanted), key=lambda s: (subset_number(s.subset), s.uid))
    if not scans:
        raise PlanError(f"luna16: no scans in subsets {wanted} under {root}")
    return scans, ann, warnings, root


def _nodule_rows(world_by_uid: dict, scan: Scan) -> tuple[int, int]:
    """(nodules, of which outside the converted volume) of one scan."""
    a = world_by_uid.get(scan.uid)
    if a is None:
        return 0, 0
    idx = np.rint(scan.out.world_to_index(a)).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < np.asarray(scan.out.size)), axis=1)
    return int(len(a)), int((~inside).sum())


# ---------------------------------------------------------------------------------------- sampling helpers
def _stored_mean(ds: h5py.Dataset) -> float:
    """Mean stored (compressed) bytes of one patch of a one-patch-per-chunk dataset."""
    return ds.id.get_storage_size() / ds.shape[0] if ds.shape[0] else 0.0


def _compressed_sizes(patches: dict[str, np.ndarray], dtypes, compressions) -> dict:
    """Mean stored bytes per patch of each dataset for every (dtype, compression), in memory."""
    from ctpatch.store import create_patch_dataset

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


def _time_merge_verify(path: Path, names) -> tuple[float, float, int]:
    """Seconds to copy every chunk (as merge does) and to read and check every patch (as verify does)."""
    from ctpatch.store import codec_of, copy_chunks, create_patch_dataset

    with h5py.File(path, "r") as src, h5py.File("plan-merge", "w", driver="core", backing_store=False) as dst:
        t = time.perf_counter()
        n = 0
        for name in names:
            ds = src[name]
            out = create_patch_dataset(dst, name, ds.shape[1:], ds.dtype, codec_of(ds))
            out.resize(ds.shape[0], axis=0)
            copy_chunks(ds, out, range(ds.shape[0]))
            n += ds.shape[0]
        t_merge = time.perf_counter() - t
        t = time.perf_counter()
        for name in names:
            block = src[name][...]
            int((~np.isfinite(block)).sum())
            if block.size:
                float(np.nanmin(block)), float(np.nanmax(block))
        t_verify = time.perf_counter() - t
    return t_merge, t_verify, n


#: the modules each kind of workflow job imports (its start-up time and memory are measured)
STEP_IMPORTS = {
    "convert": "ctpatch.convert",
    "extract_luna": "ctpatch.extract, ctpatch.extract_luna, ctpatch.make_labels, ctpatch.merge, ctpatch.verify, "
                    "mpi4py.MPI",
    "extract_ldct": "ctpatch.extract, ctpatch.extract_ldct, ctpatch.pair_ldct, ctpatch.merge, ctpatch.verify, "
                    "mpi4py.MPI",
}


def measure_startup(steps) -> dict:
    """Seconds and peak RSS of a fresh Python process importing what each kind of job imports.

    Run one after the other (and after the sample), so that they do not slow each other down.
    """
    # VmHWM, not ru_maxrss: Linux carries the parent's high-water mark over exec into ru_maxrss
    code = ("import time, resource; t = time.perf_counter(); import {mods}\n"
            "try:\n    kib = [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "except (OSError, IndexError):\n    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print(time.perf_counter() - t, kib)")
    out = {}
    for step in steps:
        t = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-c", code.format(mods=STEP_IMPORTS[step])], capture_output=True,
                                  text=True, timeout=120, check=True)
            _, rss = proc.stdout.split()[-2:]
            out[step] = {"seconds": time.perf_counter() - t, "rss_bytes": int(rss) * 1024}
        except (subprocess.SubprocessError, ValueError):
            out[step] = {"seconds": 0.0, "rss_bytes": 0}
    return out


# ---------------------------------------------------------------------------------------- LUNA16 sample
def luna_sample(config: dict, scans: list[Scan], ann: pd.DataFrame, workdir: Path, n: int,
                budget: float = 2.5) -> dict:
    """Measure compression, sizes and times on ``n`` patches of one real (or synthesized demo) scan.

    Resampling stops early once it has taken ``budget`` seconds and :data:`MIN_SAMPLE` patches are done
    (B-spline resampling of a 68³ patch takes a fraction of a second on a few cores).
    """
    import SimpleITK as sitk

    from ctpatch.convert import INTERPOLATORS
    from ctpatch.extract_luna import PROV_NEGATIVE, PROV_NODULE
    from ctpatch.io.mhd import read_image
    from ctpatch.luna import PatchLocation, cut_label, nodule_locations, random_centres
    from ctpatch.make_labels import label_volume, nodules_of_scan
    from ctpatch.normalize import hu_window
    from ctpatch.rng import keyed_rng
    from ctpatch.shifts import shift_offsets
    from ctpatch.store import ShardWriter, save_npy

    luna = config["luna16"]
    patch, neg, out_s, rs, nm = luna["patch"], luna["negatives"], luna["output"], luna["resample"], luna["normalize"]
    size, pool = int(patch["size"]), int(patch["label_pool"])
    lab = -(-size // pool)
    counts = ann.groupby("seriesuid").size().to_dict()
    with_nodules = [s for s in scans if counts.get(s.uid, 0)]
    scan = min(with_nodules or scans, key=lambda s: (s.in_voxels, s.uid))
    t_all = time.perf_counter()
    seconds: dict = {}

    t = time.perf_counter()
    if scan.plan is not None:
        from ctpatch.demo import synthesize

        from ctpatch.io.mhd import write_scan

        hu = synthesize(scan.plan, config["seed"], float(config["demo"].get("noise_hu", 20.0)))
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

    offsets = shift_offsets(patch["stride"], patch["shifts_per_side"], patch["directions"])
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
    locs += [("non_nodule", PatchLocation(tuple(int(v) for v in c), size))
             for c in random_centres(grid.shape_zyx, n - len(locs), rng)]
    # alternate the kinds, so that a sample cut short by the time budget keeps both
    nod_l, neg_l = [x for x in locs if x[0] == "nodule"], [x for x in locs if x[0] != "nodule"]
    locs = [x for pair in zip(nod_l, neg_l) for x in pair] + nod_l[len(neg_l):] + neg_l[len(nod_l):]

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
        corners = np.array([[start_xyz[0] + dx, start_xyz[1] + dy, start_xyz[2] + dz]
                            for dx in (0, size - 1) for dy in (0, size - 1) for dz in (0, size - 1)], dtype=float)
        src = scan.grid.world_to_index(grid.index_to_world(corners))
        lo_i = np.clip(np.floor(src.min(axis=0)).astype(int) - margin, 0, in_size)
        hi_i = np.clip(np.ceil(src.max(axis=0)).astype(int) + margin + 1, 0, in_size)
        t = time.perf_counter()
        if np.all(hi_i > lo_i):
            crop = image[int(lo_i[0]):int(hi_i[0]), int(lo_i[1]):int(hi_i[1]), int(lo_i[2]):int(hi_i[2])]
            sub = sitk.Resample(crop, [size] * 3, sitk.Transform(), interp, list(grid.index_to_world(start_xyz)),
                                list(grid.spacing), list(grid.direction), lo, sitk.sitkFloat32)
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

        arrays = {k: np.stack(v) if v else np.zeros((0, *((size,) * 3 if "label" not in k else (lab,) * 3),
                                                       1 if "label" not in k else 2), np.float32)
                  for k, v in patches.items()}
        specs = {"nodule": ((size,) * 3 + (1,), out_s["dtype"]), "label_nodule": ((lab,) * 3 + (2,), "float32"),
                 "non_nodule": ((size,) * 3 + (1,), out_s["dtype"]), "label_non_nodule": ((lab,) * 3 + (2,), "float32")}
        shard = tmp / "sample.h5"
        t = time.perf_counter()
        with ShardWriter(shard, specs, {"nodule": PROV_NODULE, "non_nodule": PROV_NEGATIVE},
                         compression=out_s["compression"], buffer=int(config["extract"]["buffer_patches"])) as w:
            for k in ("nodule", "non_nodule"):
                for img, labp in zip(arrays[k], arrays["label_" + k]):
                    w.add(k, img)
                    w.add("label_" + k, labp)
        seconds["write_per_patch"] = (time.perf_counter() - t) / len(locs)
        with h5py.File(shard, "r") as f:
            stored = {k: _stored_mean(f[k]) for k in specs if f[k].shape[0]}
            chunk_total = sum(f[k].id.get_storage_size() for k in specs)
        overhead = (shard.stat().st_size - chunk_total) / len(locs)
        t_merge, t_verify, n_rows = _time_merge_verify(shard, list(specs))
    seconds["merge_per_patch"] = t_merge / len(locs)
    seconds["verify_per_patch"] = t_verify / len(locs)
    dtypes = LUNA_DTYPES if out_s["dtype"] == "float64" else LUNA_DTYPES[:2]
    alternatives = _compressed_sizes(arrays, dtypes, COMPRESSED)
    seconds["sample_total"] = time.perf_counter() - t_all
    kinds_n = {k: len(patches[k]) for k in ("nodule", "non_nodule")}
    if not kinds_n["nodule"]:  # no nodule in any planned scan: nodule patches would look like negatives
        stored["nodule"], stored["label_nodule"] = stored["non_nodule"], stored["label_non_nodule"]
        for v in alternatives.values():
            v["nodule"], v["label_nodule"] = v["non_nodule"], v["label_non_nodule"]
    return {"scan": scan.uid, "subset": scan.subset, "source": str(scan.path) if scan.path else "demo (synthesized)",
            "patches": kinds_n, "stored_bytes_per_patch": stored, "chunk_overhead_bytes_per_patch": overhead,
            "alternatives": {f"{d}/{c}": v for (d, c), v in alternatives.items()}, "seconds": seconds}


def _extraction_cutter(npy: Path, mask_zyx: np.ndarray, dtype, pool: int):
    """(volume, mask, cut(volume, mask, loc)) as extract_luna reads and cuts them (x, y, z in memory, or
    memory-mapped (z, y, x) in older versions)."""
    from ctpatch import extract_luna, luna

    if hasattr(extract_luna, "load_xyz") and hasattr(luna, "cut_image_xyz"):
        from ctpatch.labels import label_patch

        vol = extract_luna.load_xyz(npy)
        mask = np.ascontiguousarray(mask_zyx.transpose(2, 1, 0))
        return vol, mask, lambda v, m, loc: (luna.cut_image_xyz(v, loc, 0.0, dtype),
                                             label_patch(luna.crop_mask_xyz(m, loc), pool))
    vol = np.load(npy, mmap_mode="r")
    return vol, mask_zyx, lambda v, m, loc: (luna.cut_image(v, loc, 0.0, dtype), luna.cut_label(m, loc, pool))


def _extraction_loads_volume() -> bool:
    from ctpatch import extract_luna

    return hasattr(extract_luna, "load_xyz")


# ---------------------------------------------------------------------------------------- LUNA16 plan
def plan_luna(config: dict, workdir: Path, sample: int, cores: int, budget: float = 2.5) -> dict:
    from ctpatch.extract_luna import PROV_NEGATIVE, PROV_NODULE, expected_counts
    from ctpatch.layout import PROV_CROP, crop_edge
    from ctpatch.shifts import shift_offsets

    t0 = time.perf_counter()
    luna = config["luna16"]
    patch, neg, out_s, rs = luna["patch"], luna["negatives"], luna["output"], luna["resample"]
    scans, ann, warnings, root = luna_inputs(config, workdir)
    t_headers = time.perf_counter() - t0
    size, pool = int(patch["size"]), int(patch["label_pool"])
    lab = -(-size // pool)
    n_off = len(shift_offsets(patch["stride"], patch["shifts_per_side"], patch["directions"]))
    img_raw = size**3 * np.dtype(out_s["dtype"]).itemsize
    lab_raw = lab**3 * 2 * 4

    world = ann[["coordX", "coordY", "coordZ"]].to_numpy(float)
    ann_by_uid = {uid: world[rows] for uid, rows in ann.groupby("seriesuid").indices.items()}
    groups: dict[str, dict] = {}
    scan_patches: dict[str, int] = {}  # per scan: its nodule patches + negatives (the extraction unit's work)
    per_scan = []
    for s in scans:
        nod, outside = _nodule_rows(ann_by_uid, s)
        if outside:
            warnings.append(f"scan {s.uid} ({s.subset}): {outside} annotation(s) outside the converted volume: "
                            f"make_labels will stop")
        per_scan.append((s, nod))
    for sub in dict.fromkeys(s.subset for s in scans):
        members = [(s, nod) for s, nod in per_scan if s.subset == sub]
        uids = [s.uid for s, _ in members]
        table = pd.DataFrame({"seriesuid": [s.uid for s, nod in members for _ in range(nod)]})
        nodule_patches, negatives = expected_counts(table, uids, n_off, neg)
        scan_patches.update({uid: nodule_patches[uid] + negatives[uid] for uid in uids})
        biggest = max(members, key=lambda m: m[0].out_voxels)[0]
        groups[sub] = {
            "scans": len(members), "nodules": int(sum(nod for _, nod in members)),
            "patches": {"nodule": int(sum(nodule_patches.values())), "non_nodule": int(sum(negatives.values()))},
            "in_voxels": int(sum(s.in_voxels for s, _ in members)),
            "out_voxels": int(sum(s.out_voxels for s, _ in members)),
            "largest_scan": biggest.uid, "largest_out_voxels": biggest.out_voxels,
        }

    smp = luna_sample(config, scans, ann, workdir, sample, budget) if sample else None
    start = measure_startup(("convert", "extract_luna"))
    start["tables"] = start["extract_luna"]  # make_labels, merge and verify import a subset of it

    def per_patch_bytes(kind: str, dtype: str, comp: str) -> float:
        lab_name = "label_" + kind
        if smp is None:
            return (size**3 * np.dtype(dtype).itemsize + lab_raw) if comp == "none" else math.nan
        if comp == "none":
            return size**3 * np.dtype(dtype).itemsize + lab_raw + smp["chunk_overhead_bytes_per_patch"]
        if dtype == out_s["dtype"] and comp == out_s["compression"]:
            st = smp["stored_bytes_per_patch"]
        else:
            st = smp["alternatives"][f"{dtype}/{comp}"]
        return st[kind] + st[lab_name] + smp["chunk_overhead_bytes_per_patch"]

    def nodule_image_bytes(dtype: str, comp: str) -> float:
        """The nodule image's share of :func:`per_patch_bytes`."""
        if comp == "none" or smp is None:
            return size**3 * np.dtype(dtype).itemsize if comp == "none" else math.nan
        st = smp["stored_bytes_per_patch"] if (dtype, comp) == (out_s["dtype"], out_s["compression"]) else \
            smp["alternatives"][f"{dtype}/{comp}"]
        return st["nodule"]

    prov_bytes = {"nodule": PROV_NODULE.itemsize, "non_nodule": PROV_NEGATIVE.itemsize}
    dtypes = LUNA_DTYPES if out_s["dtype"] == "float64" else LUNA_DTYPES[:2]
    # crops layout: per nodule one crop of edge C instead of its patches' images, estimated as
    # (C / P)³ patches (crops compress like patches), plus a 16-byte view row per nodule patch
    crops = out_s.get("layout", "full") == "crops"
    edge = crop_edge(size, shift_offsets(patch["stride"], patch["shifts_per_side"], patch["directions"]))
    for g in groups.values():
        n = g["patches"]
        g["raw_bytes"] = int(sum(n[k] * (img_raw + lab_raw) for k in n))
        g["file_bytes"] = {f"{d}/{c}": sum(n[k] * (per_patch_bytes(k, d, c) + prov_bytes[k]) for k in n)
                           for d in dtypes for c in COMPRESSIONS}
        if crops:
            g["raw_bytes"] += int(g["nodules"] * img_raw * (edge / size) ** 3 - n["nodule"] * img_raw)
            for d in dtypes:
                for c in COMPRESSIONS:
                    img = nodule_image_bytes(d, c)
                    g["file_bytes"][f"{d}/{c}"] += (g["nodules"] * img * (edge / size) ** 3 - n["nodule"] * img
                                                    + n["nodule"] * 16 + g["nodules"] * PROV_CROP.itemsize)
        g["file_bytes"] = {k: _round(v) for k, v in g["file_bytes"].items()}
        g["estimated_file_bytes"] = g["file_bytes"][f"{out_s['dtype']}/{out_s['compression']}"]

    total = _totals(groups)
    biggest = max(scans, key=lambda s: s.out_voxels)
    memory = luna_memory(config, biggest, max(scans, key=lambda s: s.in_voxels), start, size, lab_raw,
                         max(sum(g["patches"].values()) for g in groups.values()))
    times = luna_times(config, groups, scans, scan_patches, smp, start, cores) if smp else None
    intermediate = {"volumes": total["out_voxels"] * 4, "masks": total["out_voxels"],
                    "shards": total["estimated_file_bytes"]}
    if luna["root"] == "demo":
        intermediate["demo_scans"] = total["in_voxels"] * 2
    return {
        "mode": "luna16", "root": root, "demo": luna["root"] == "demo", "groups": groups, "total": total,
        "settings": {"patch": patch, "patches_per_nodule": n_off, "negatives": neg, "output": out_s,
                     "resample": rs, "tasks": config["extract"]["tasks"]},
        "sample": smp, "memory": memory, "time": times, "intermediate_bytes": intermediate,
        "largest_scan": {"uid": biggest.uid, "subset": biggest.subset, "size": list(biggest.grid.size),
                         "converted_size": list(biggest.out.size)},
        "warnings": warnings, "seconds": {"headers": t_headers},
    }


def _round(x: float) -> float:
    return float(x) if math.isnan(x) else int(round(x))


def _totals(groups: dict) -> dict:
    total: dict = {}
    for g in groups.values():
        for k, v in g.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool) and not k.startswith("largest"):
                total[k] = total.get(k, 0) + v
            elif isinstance(v, dict):
                d = total.setdefault(k, {})
                for kk, vv in v.items():
                    d[kk] = d.get(kk, 0) + vv
    return total


def luna_memory(config, biggest: Scan, widest: Scan, start: dict, size: int, lab_raw: int,
                most_patches: int) -> dict:
    """Peak bytes of one process of each step (the largest scan decides) on top of its measured start-up RSS."""
    rs = config["luna16"]["resample"]
    img_raw = size**3 * np.dtype(config["luna16"]["output"]["dtype"]).itemsize
    buf = int(config["extract"]["buffer_patches"])
    in_b = widest.in_voxels * widest.element_bytes
    coef = widest.in_voxels * 8 if rs["enabled"] and rs["interpolator"] == "bspline" else 0
    out32 = biggest.out_voxels * 4
    convert = start["convert"]["rss_bytes"] + max(in_b + coef + widest.out_voxels * 4, 2 * out32)
    labels = start["tables"]["rss_bytes"] + biggest.out_voxels
    # ShardWriter: up to `buf` pending patches per dataset (4 datasets) and a write buffer of as many;
    # cutting: the crop, its transposed copy and the cast.  The volume (float32) and mask (bool) of the
    # scan are held in memory (x, y, z), or memory-mapped (page cache) by older extractions.
    buffers = 2 * buf * (2 * img_raw + 2 * lab_raw) + 3 * img_raw
    volume = biggest.out_voxels * 5
    from ctpatch.extract_luna import PROV_NODULE

    merge = start["tables"]["rss_bytes"] + most_patches * PROV_NODULE.itemsize * 2 + 2 * img_raw
    verify = start["tables"]["rss_bytes"] + 64 * img_raw + 64 * size**3  # a block of 64 patches, its isfinite mask
    return {
        "startup": {k: v["rss_bytes"] for k, v in start.items() if k != "tables"},
        "convert_mhd": convert, "bspline_coefficients": coef, "make_labels": labels,
        "extract_patches_rank": start["extract_luna"]["rss_bytes"] + buffers + volume,
        "extract_patches_rank_buffers": buffers, "extract_patches_rank_volume": volume,
        "extract_patches_rank_volume_in_memory": _extraction_loads_volume(),
        "merge_patches": merge, "verify_patches": verify,
    }


def _makespan(durations, slots: int) -> float:
    """Wall time of independent jobs on ``slots`` parallel slots, longest first to the least loaded."""
    from ctpatch.extract import assign

    slots = max(1, min(int(slots), len(durations)))
    return max((sum(durations[i] for i in part) for part in assign(list(durations), slots)), default=0.0)


def luna_times(config, groups, scans, scan_patches: dict, smp, start, cores: int) -> dict:
    """CPU and wall seconds of each step, scaled from the sample; the extraction as the workflow
    splits it: one job per subset with ``tasks`` ranks, scans dealt to ranks by ``extract.assign``."""
    from ctpatch.extract import assign

    s = smp["seconds"]
    tasks = int(config["extract"]["tasks"])
    job = start["tables"]["seconds"]
    job_convert, job_extract = start["convert"]["seconds"], start["extract_luna"]["seconds"]
    read_rate = s["read"] / max(1, _sample_scan(scans, smp).in_voxels)
    cpu = {}
    per_scan = [job_convert + read_rate * sc.in_voxels + (s["resample_per_voxel"] + s["normalize_per_voxel"]
                + 4 * s["write_per_byte"]) * sc.out_voxels for sc in scans]
    if config["luna16"]["root"] == "demo":
        synth = (s["synthesize"] + s["write_scan"]) / max(1, _sample_scan(scans, smp).in_voxels)
        cpu["make_demo"] = job + synth * sum(sc.in_voxels for sc in scans)
    cpu["convert_mhd"] = float(sum(per_scan))
    lab_rate = s["labels"] / max(1, _sample_scan(scans, smp).out_voxels)
    cpu["make_labels"] = job * len(groups) + lab_rate * sum(sc.out_voxels for sc in scans)
    t_patch = s["cut_per_patch"] + s["write_per_patch"]
    n_patches = {g: sum(v["patches"].values()) for g, v in groups.items()}
    # one unit per scan: load its float32 volume and bool mask, cut and write its patches
    unit = {sc.uid: s["load_per_byte"] * 5 * sc.out_voxels + scan_patches[sc.uid] * t_patch for sc in scans}
    extract_wall = []
    cpu["extract_patches"] = 0.0
    for g in groups:
        uids = [sc.uid for sc in scans if sc.subset == g]
        costs = [unit[u] for u in uids]
        ranks = assign([1.0 + scan_patches[u] for u in uids], tasks)  # the workflow's assignment
        extract_wall.append(job_extract + max(sum(costs[i] for i in r) for r in ranks))
        cpu["extract_patches"] += job_extract * tasks + sum(costs)
    cpu["merge_patches"] = sum(job + n * s["merge_per_patch"] for n in n_patches.values())
    cpu["verify_patches"] = sum(job + n * s["verify_per_patch"] for n in n_patches.values())
    wall = {}
    if "make_demo" in cpu:
        wall["make_demo"] = cpu["make_demo"]
    wall["convert_mhd"] = _makespan(per_scan, cores)
    wall["make_labels"] = cpu["make_labels"] / max(1, min(cores, len(groups)))
    wall["extract_patches"] = _makespan(extract_wall, max(1, cores // max(1, min(tasks, cores))))
    wall["merge_patches"] = _makespan([job + n * s["merge_per_patch"] for n in n_patches.values()], cores)
    wall["verify_patches"] = _makespan([job + n * s["verify_per_patch"] for n in n_patches.values()], cores)
    return {"cores": cores, "tasks": tasks, "cpu_seconds": cpu, "wall_seconds": wall,
            "total_wall_seconds": float(sum(wall.values())),
            "job_start_seconds": {k: v["seconds"] for k, v in start.items()}}


def _sample_scan(scans, smp) -> Scan:
    return next(s for s in scans if s.uid == smp["scan"])


# ---------------------------------------------------------------------------------------- LDCT
def plan_ldct(config: dict, workdir: Path, sample_pairs: int, cores: int) -> dict:
    from ctpatch.config import ldct_patch_settings
    from ctpatch.extract_ldct import grid_sizes, multiplier, patch_dtype
    from ctpatch.io.dicom import pair_slices
    from ctpatch.pair_ldct import PairingError, select_random_n, slice_files
    from ctpatch.verify_ldct import expected_cut

    t0 = time.perf_counter()
    inp = config["ldct"]
    settings = ldct_patch_settings(config)  # the settings the workflow hands to the extraction
    root = _path(inp["root"], workdir)
    patients = ldct_patients(config, workdir)
    warnings: list[str] = []
    groups: dict[str, dict] = {}
    selected_pairs = []
    max_pixels = 0
    for patient in patients:
        pdir = root / patient
        try:
            ins, tgs = slice_files(pdir / inp["input_dir"]), slice_files(pdir / inp["target_dir"])
            pairs, problems = pair_slices(ins, tgs, by=inp["pair_by"], on_error=inp["on_error"])
        except (PairingError, ValueError) as exc:
            warnings.append(f"patient {patient}: {exc}")
            continue
        warnings += [f"patient {patient}: {m}" for m in problems]
        sel = select_random_n(patient, len(pairs), int(inp["random_n"]), int(config["seed"]))
        chosen = [p for p, s in zip(pairs, sel) if s]
        cut = sum(expected_cut(p.input.rows, p.input.cols, settings) for p in chosen)
        max_pixels = max([max_pixels] + [p.input.rows * p.input.cols for p in chosen])
        groups[patient] = {"pairs": len(pairs), "selected_pairs": len(chosen), "patches_cut": int(cut)}
        selected_pairs += [(patient, p) for p in chosen]
    if not groups:
        raise PlanError(f"ldct: no patient with slice pairs under {root}")
    t_headers = time.perf_counter() - t0
    scale, lr_edge, edge, _ = grid_sizes(settings)
    pixels = lr_edge * lr_edge + edge * edge  # input + target pixels of one patch (SR: LR input, HR target)
    out_s = settings["output"]
    mult = multiplier(settings)

    smp = ldct_sample(settings, selected_pairs, sample_pairs) if sample_pairs else None
    start = measure_startup(("extract_ldct",))
    ext = tab = start["extract_ldct"]  # pair_slices, merge and verify import a subset of it
    keep = 1.0 if not settings["air_threshold"]["enabled"] else (smp["keep_rate"] if smp else math.nan)
    width = max(len(p.input.path) for _, p in selected_pairs) if selected_pairs else 1
    prov = patch_dtype(max(len(p) for p in groups), width, settings["super_resolution"]["enabled"]).itemsize

    def per_patch(dtype: str, comp: str) -> float:
        raw = pixels * np.dtype(dtype).itemsize
        if comp == "none":
            return raw + (smp["chunk_overhead_bytes_per_patch"] if smp else 0)
        if smp is None:
            return math.nan
        st = smp["stored_bytes_per_patch"] if (dtype, comp) == (out_s["dtype"], out_s["compression"]) else \
            smp["alternatives"].get(f"{dtype}/{comp}")
        return math.nan if st is None else st["input"] + st["target"] + smp["chunk_overhead_bytes_per_patch"]

    dtypes = [d for d in LDCT_DTYPES if _dtype_ok(settings, d)]
    for g in groups.values():
        kept = g["patches_cut"] * keep
        g["patches"] = {"patch": _round(kept * mult)}
        g["patches_exact"] = not settings["air_threshold"]["enabled"]
        g["raw_bytes"] = _round(g["patches"]["patch"] * pixels * np.dtype(out_s["dtype"]).itemsize)
        g["file_bytes"] = {f"{d}/{c}": _round(g["patches"]["patch"] * (per_patch(d, c) + prov))
                           for d in dtypes for c in COMPRESSIONS}
        g["estimated_file_bytes"] = g["file_bytes"][f"{out_s['dtype']}/{out_s['compression']}"]
    total = _totals(groups)
    patch_b = edge * edge * 4
    buf = int(settings["buffer_patches"])
    factors = 1.0 + (sum(f * f for f in settings["ds_augment"]["factors"]) if settings["ds_augment"]["enabled"] else 0)
    # a rank holds one pair: raw input and target (float32), normalized copies, downscaled copies of
    # both and of the raw target, plus the writer's buffers (2 datasets, one stacked copy)
    pair_b = max_pixels * 4 * (2 + 2 * factors + factors)
    memory = {"startup": {k: v["rss_bytes"] for k, v in start.items()},
              "extract_patches_rank": ext["rss_bytes"] + pair_b + buf * 3 * patch_b * mult, "pair_bytes": pair_b}
    times = None
    if smp:
        tasks = int(config["extract"]["tasks"])
        n_pairs = total["selected_pairs"]
        cpu = {"pair_slices": tab["seconds"] * len(groups) + t_headers,
               "extract_patches": ext["seconds"] * tasks + n_pairs * smp["seconds_per_pair"],
               "merge_patches": tab["seconds"] + total["patches"]["patch"] * smp["merge_per_patch"],
               "verify_patches": tab["seconds"] + total["patches"]["patch"] * smp["verify_per_patch"]}
        wall = {"pair_slices": cpu["pair_slices"] / max(1, min(cores, len(groups))),
                "extract_patches": cpu["extract_patches"] / max(1, min(tasks, cores)),
                "merge_patches": cpu["merge_patches"], "verify_patches": cpu["verify_patches"]}
        times = {"cores": cores, "tasks": tasks, "cpu_seconds": cpu, "wall_seconds": wall,
                 "total_wall_seconds": float(sum(wall.values())),
                 "job_start_seconds": {k: v["seconds"] for k, v in start.items()}}
    return {"mode": "ldct", "root": str(root), "groups": groups, "total": total,
            "settings": {"patch": settings["patch"], "edge": edge, "input_edge": lr_edge, "scale": scale,
                         "multiplier": mult, "output": out_s,
                         "air_threshold": settings["air_threshold"], "random_n": inp["random_n"]},
            "sample": smp, "memory": memory, "time": times,
            "intermediate_bytes": {"shards": total["estimated_file_bytes"]},
            "warnings": warnings, "seconds": {"headers": t_headers}}


def _dtype_ok(settings: dict, dtype: str) -> bool:
    from ctpatch.config import ldct_settings

    try:
        ldct_settings({**settings, "output": {**settings["output"], "dtype": dtype}})
        return True
    except ValueError:
        return False


def ldct_sample(settings: dict, selected_pairs: list, n: int) -> dict:
    """Extract up to ``n`` pairs (of different patients first) with the workflow's Job; measure them."""
    from types import SimpleNamespace

    from ctpatch.extract_ldct import Job

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
        table = pd.DataFrame([{
            "patient": patient, "pair_index": i, "input_path": os.path.abspath(p.input.path),
            "target_path": os.path.abspath(p.target.path),
            "slice_z": "" if p.position_z is None else repr(float(p.position_z)),
            "instance": "" if p.instance is None else int(p.instance),
            "rows": p.input.rows, "cols": p.input.cols, "selected": True} for i, (patient, p) in enumerate(chosen)])
        table.to_csv(tmp / "pairs.tsv", sep="\t", index=False)
        job = Job(SimpleNamespace(settings=settings, inputs={"pairs": [str(tmp / "pairs.tsv")]}))
        shard = tmp / "sample.h5"
        t = time.perf_counter()
        cut = kept = written = 0
        with job.writer(shard) as w:
            for unit in job.units():
                c = job.run(unit, w)
                cut, kept, written = cut + c["cut"], kept + c["kept"], written + c["written"]
        t_pairs = time.perf_counter() - t
        with h5py.File(shard, "r") as f:
            stored = {k: _stored_mean(f[k]) for k in ("input", "target")}
            chunk_total = sum(f[k].id.get_storage_size() for k in ("input", "target"))
            arrays = {k: f[k][...] for k in ("input", "target")}
        overhead = (shard.stat().st_size - chunk_total) / max(1, written)
        t_merge, t_verify, _ = _time_merge_verify(shard, ["input", "target"])
    # alternatives from the float32 values of the stored patches (exact for float16 -> float32)
    alts = _compressed_sizes({k: v.astype(np.float32) for k, v in arrays.items()},
                             [d for d in LDCT_DTYPES if _dtype_ok(settings, d)], COMPRESSED) if written else {}
    return {"pairs": [f"{pt}/{Path(p.input.path).name}" for pt, p in chosen], "cut": cut, "kept": kept,
            "written": written, "keep_rate": kept / cut if cut else 1.0, "stored_bytes_per_patch": stored,
            "chunk_overhead_bytes_per_patch": overhead,
            "alternatives": {f"{d}/{c}": v for (d, c), v in alts.items()},
            "seconds_per_pair": t_pairs / max(1, len(chosen)),
            "merge_per_patch": t_merge / max(1, written), "verify_per_patch": t_verify / max(1, written)}


# ---------------------------------------------------------------------------------------- report
def make_plan(config: dict, workdir=".", sample: int = 24, cores: int | None = None, budget: float = 2.5) -> dict:
    """The plan of ``config`` (validated, defaults filled) as a JSON-ready dict.

    ``sample``: LUNA16 patches to measure (0: none; LDCT measures 2 pairs); ``budget``: seconds of
    resampling after which the LUNA16 sample stops early; ``cores``: for the wall-time estimate.
    """
    t = time.perf_counter()
    workdir = Path(workdir)
    if not cores:
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cores = int(cores)
    if config["mode"] == "luna16":
        plan = plan_luna(config, workdir, int(sample), cores, budget)
    else:
        plan = plan_ldct(config, workdir, 2 if sample else 0, cores)
    plan["seconds"]["plan"] = time.perf_counter() - t
    return plan


def _b(n) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "n/a"
    for unit, f in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= f:
            return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"


def _t(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"


def format_plan(plan: dict) -> str:
    lines = []
    st, tot = plan["settings"], plan["total"]
    if plan["mode"] == "luna16":
        demo = " (demo, planned without voxels)" if plan["demo"] else ""
        lines.append(f"ctpatch plan: LUNA16 nodule mode, root {plan['root']}{demo}")
        p, n, o, r = st["patch"], st["negatives"], st["output"], st["resample"]
        lines.append(f"  patch {p['size']}^3, {st['patches_per_nodule']} per nodule; negatives {n['ratio']}x "
                     f"{n['strategy']}/{n['scans']}; output {o['dtype']} {o['compression']}; resample "
                     + (f"{r['spacing_mm']} mm {r['interpolator']}" if r["enabled"] else "off"))
        head = ["subset", "scans", "nodules", "nodule p.", "negatives", "raw size", "file size"]
        rows = [[g, v["scans"], v["nodules"], v["patches"]["nodule"], v["patches"]["non_nodule"], _b(v["raw_bytes"]),
                 _b(v["estimated_file_bytes"])] for g, v in plan["groups"].items()]
        rows.append(["total", tot["scans"], tot["nodules"], tot["patches"]["nodule"], tot["patches"]["non_nodule"],
                     _b(tot["raw_bytes"]), _b(tot["estimated_file_bytes"])])
    else:
        lines.append(f"ctpatch plan: LDCT input/target mode, root {plan['root']}")
        sr = (f" target, input {st['input_edge']}x{st['input_edge']} (super-resolution x{st['scale']})"
              if st.get("scale", 1) > 1 or st.get("input_edge", st["edge"]) != st["edge"] else "")
        lines.append(f"  patch {st['edge']}x{st['edge']}{sr} (x{st['multiplier']} augmentation), output "
                     f"{st['output']['dtype']} {st['output']['compression']} {st['output']['layout']}; air threshold "
                     f"{'on: patch counts estimated from the sample' if st['air_threshold']['enabled'] else 'off'}")
        head = ["patient", "pairs", "selected", "grid p.", "patches", "raw size", "file size"]
        rows = [[g, v["pairs"], v["selected_pairs"], v["patches_cut"], v["patches"]["patch"], _b(v["raw_bytes"]),
                 _b(v["estimated_file_bytes"])] for g, v in plan["groups"].items()]
        rows.append(["total", tot["pairs"], tot["selected_pairs"], tot["patches_cut"], tot["patches"]["patch"],
                     _b(tot["raw_bytes"]), _b(tot["estimated_file_bytes"])])
    from ctpatch.reading import reader_needs

    lines.append(f"  reading the files outside ctpatch: {reader_needs([st['output']['compression']])}")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]

    def fmt(r):
        cells = [str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))]
        return "  " + "  ".join(cells)

    rule = "  " + "-" * (sum(widths) + 2 * len(widths) - 2)
    lines += ["", fmt(head)] + [fmt(r) for r in rows[:-1]] + [rule, fmt(rows[-1])]

    smp = plan["sample"]
    lines.append("")
    if smp:
        if plan["mode"] == "luna16":
            k = smp["patches"]
            lines.append(f"measured on {sum(k.values())} sample patches ({k['nodule']} nodule, {k['non_nodule']} "
                         f"negative) of scan {smp['scan']} ({smp['subset']}, {smp['source']}):")
        else:
            lines.append(f"measured on {len(smp['pairs'])} sample pair(s) ({smp['written']} patches; kept "
                         f"{smp['kept']} of {smp['cut']} grid patches): {', '.join(smp['pairs'])}")
    else:
        lines.append("no sample measured (--no-sample): compressed sizes and times unknown")
    combos = sorted(tot["file_bytes"])
    dts = list(dict.fromkeys(c.split("/")[0] for c in combos))
    lines.append("  output size per dtype and compression (all groups):")
    lines.append("    " + "dtype".ljust(9) + "".join(c.rjust(12) for c in COMPRESSIONS))
    for d in dts:
        sizes = "".join(_b(tot["file_bytes"].get(f"{d}/{c}")).rjust(12) for c in COMPRESSIONS)
        lines.append("    " + d.ljust(9) + sizes)
    raw = tot["raw_bytes"]
    if smp and tot["estimated_file_bytes"]:
        lines.append(f"  compression ratio of the configured output: {raw / tot['estimated_file_bytes']:.2f}x")
    inter = plan["intermediate_bytes"]
    lines.append("  other disk: " + ", ".join(f"{k} {_b(v)}" for k, v in inter.items()))

    mem = plan["memory"]
    lines.append("")
    if plan["mode"] == "luna16":
        ls = plan["largest_scan"]
        lines.append(f"peak memory per process (largest scan {ls['uid']} {ls['subset']}: {ls['size']} -> "
                     f"{ls['converted_size']} voxels, x y z):")
        coef = mem["bspline_coefficients"]
        lines.append(f"  convert_mhd            {_b(mem['convert_mhd'])}"
                     + (f"  (of which B-spline coefficients {_b(coef)})" if coef else ""))
        lines.append(f"  make_labels            {_b(mem['make_labels'])}")
        mapped = "" if mem["extract_patches_rank_volume_in_memory"] else ", memory-mapped"
        lines.append(f"  extract_patches rank   {_b(mem['extract_patches_rank'])}  (buffers "
                     f"{_b(mem['extract_patches_rank_buffers'])} + the scan's volume and mask "
                     f"{_b(mem['extract_patches_rank_volume'])}{mapped})")
        lines.append(f"  merge_patches          {_b(mem['merge_patches'])}")
        lines.append(f"  verify_patches         {_b(mem['verify_patches'])}")
    else:
        lines.append(f"peak memory per extraction rank: {_b(mem['extract_patches_rank'])} (one slice pair and its "
                     f"copies {_b(mem['pair_bytes'])})")
    lines.append("  (of which the measured start-up of the step's Python process: "
                 + ", ".join(f"{k} {_b(v)}" for k, v in mem["startup"].items()) + ")")
    tm = plan["time"]
    lines.append("")
    if tm:
        lines.append(f"estimated time on {tm['cores']} cores, {tm['tasks']} MPI ranks per extraction "
                     "(from the sample; Snakemake's own scheduling not included):")
        lines.append("    step               CPU        wall")
        for k, v in tm["cpu_seconds"].items():
            lines.append(f"    {k:<16} {_t(v):>8} {_t(tm['wall_seconds'][k]):>10}")
        lines.append(f"    {'total':<16} {_t(sum(tm['cpu_seconds'].values())):>8} {_t(tm['total_wall_seconds']):>10}")
    if plan["warnings"]:
        lines.append("")
        lines.append(f"warnings ({len(plan['warnings'])}):")
        lines += [f"  - {w}" for w in plan["warnings"][:10]]
        if len(plan["warnings"]) > 10:
            lines.append(f"  ... and {len(plan['warnings']) - 10} more (see --json)")
    lines.append("")
    sec = plan["seconds"]
    lines.append(f"plan took {sec['plan']:.1f} s (headers and tables {sec['headers']:.2f} s)")
    return "\n".join(lines)


def _jsonable(v):
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ctpatch.plan", description=__doc__.split("\n\n")[0])
    ap.add_argument("--configfile", nargs="+", default=[], help="config YAML file(s), merged in order")
    ap.add_argument("--settings-file", help="settings of scope 'plan' (the workflow's validated config), instead "
                                            "of --configfile")
    ap.add_argument("--json", help="also write the plan as JSON to this file")
    ap.add_argument("--text", help="also write the printed table to this file")
    ap.add_argument("--workdir", default=".", help="folder the workflow runs in (relative paths start there)")
    ap.add_argument("--cores", type=int, help="cores of the run, for the wall-time estimate (default: this machine's)")
    ap.add_argument("--sample", type=int, default=24, help="LUNA16 patches to measure (default 24; LDCT: 2 pairs)")
    ap.add_argument("--sample-seconds", type=float, default=2.5,
                    help="LUNA16: stop resampling sample patches after this many seconds (at least 8 are made)")
    ap.add_argument("--no-sample", action="store_true", help="counts and raw sizes only (no scan is read)")
    args = ap.parse_args(argv)
    if bool(args.configfile) == bool(args.settings_file):
        ap.error("expected either --configfile or --settings-file")
    if args.sample < MIN_SAMPLE:
        ap.error(f"--sample: expected at least {MIN_SAMPLE} patches, got {args.sample}")
    try:
        if args.settings_file:
            config = read_settings(args.settings_file, scope="plan").to_dict()
        else:
            config = load_config(*args.configfile)
        plan = make_plan(config, args.workdir, 0 if args.no_sample else args.sample, args.cores, args.sample_seconds)
    except (PlanError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from ctpatch.store import atomic_path, write_json

    text = format_plan(plan)
    print(text)
    if args.json:
        write_json(args.json, _jsonable(plan))
    if args.text:
        with atomic_path(args.text) as tmp:
            Path(tmp).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    from ctpatch.cli import run_cli

    sys.exit(run_cli(main))
