"""Resampling to 1.25 mm: speed and nodule-centre accuracy of SimpleITK B-spline / linear and scipy cubic zoom.

    python benchmarks/resample.py          # the 3 generated full-size scans of luna.py, 5 reps
    python benchmarks/resample.py --quick  # small scans, 2 reps

Timed: the resampling call alone, on the HU volume already read (SimpleITK ``Resample`` onto ctpatch's
output grid, as ``ctpatch.luna16.convert`` does, with SimpleITK's default thread count on this machine, and
linear once more with 1 thread, as the workflow's ``convert_mhd`` runs it (``threads: 1``);
``scipy.ndimage.zoom(order=3, mode="nearest")`` on the float64 array, single-threaded, as the
reference did).  Each repetition first waits (up to 240 s) for idle CPUs; the CPU seconds other
processes used during it are recorded (``foreign_s``).

Accuracy: for every generated nodule whose neighbourhood lies inside the volume, the centroid (world
mm) of the partial-volume weights ``clip((HU + 850) / 910, 0, 1)`` (lung -850 -> 0, nodule +60 -> 1)
over the voxels within ``radius + 2.5 mm`` of its true centre.  The same estimator on the original,
unresampled scan gives the reference point: ``shift`` = |centroid after - centroid before|, in output
voxels (1.25 mm), is what the resampling moved the nodule; ``vs truth`` compares with ``truth.json``
(includes the estimator's own bias from noise and neighbouring tissue, the ``original`` row).  Each
resampled volume is placed in the world by its own geometry: ctpatch's output grid for SimpleITK;
for ``zoom`` its own mapping (``i_out = i_in (n_out - 1) / (n_in - 1)``: interpolation alone) and the
reference program's coordinate formula (``|world - origin| / new_spacing``: what its labels assumed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy.ndimage import zoom

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

from ctpatch.core.geometry import resampled_grid  # noqa: E402
from ctpatch.io.mhd import grid_of, read_image  # noqa: E402
from ctpatch.luna16.convert import resample  # noqa: E402

SPACING = 1.25


def centroid_world(vol_zyx: np.ndarray, origin_xyz, step_xyz, centre_world, radius_mm: float):
    """Weighted centroid (world mm, x, y, z) near ``centre_world`` of a volume placed by ``origin + step * index``."""
    o, st, c = (np.asarray(v, float) for v in (origin_xyz, step_xyz, centre_world))
    ci = (c - o) / st  # continuous index (x, y, z)
    lo = np.floor(ci - radius_mm / st).astype(int)[::-1]
    hi = (np.ceil(ci + radius_mm / st).astype(int) + 1)[::-1]
    if np.any(lo < 0) or np.any(hi > np.asarray(vol_zyx.shape)):
        return None
    box = np.asarray(vol_zyx[tuple(slice(a, b) for a, b in zip(lo, hi))], dtype=np.float64)
    w = np.clip((box + 850.0) / 910.0, 0.0, 1.0)
    axes = [o[a] + st[a] * np.arange(lo[2 - a], hi[2 - a], dtype=np.float64) for a in (2, 1, 0)]  # world z, y, x
    z, y, x = np.meshgrid(*axes, indexing="ij")
    w = w * (((z - c[2]) ** 2 + (y - c[1]) ** 2 + (x - c[0]) ** 2) <= radius_mm**2)
    if w.sum() <= 0:
        return None
    return np.array([(w * x).sum(), (w * y).sum(), (w * z).sum()]) / w.sum()


def main() -> None:
    ap = C.arg_parser(__doc__)
    args = ap.parse_args()
    reps = C.reps_of(args)
    demo = C.QUICK_DEMO if args.quick else C.FULL_DEMO
    methods = ("sitk-bspline", "sitk-linear", "sitk-linear-1thread", "scipy-zoom-cubic")
    default_threads = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    waited, foreign = [], []
    times = {m: [] for m in methods}  # per rep: seconds summed over scans
    errors = {m: [] for m in ("original", *methods, "scipy-zoom-cubic (reference coordinates)")}  # per nodule, rep 1
    with C.Workdir(args.workdir) as work:
        C.make_data(work / "luna", demo)
        truth = json.loads((work / "luna" / "CSVFILES" / "truth.json").read_text())
        scans = []
        for s in truth["scans"]:
            image = read_image(work / "luna" / s["subset"] / f"{s['seriesuid']}.mhd")
            scans.append((s, image, sitk.GetArrayFromImage(image).astype(np.float64)))
        print(
            f"{len(scans)} scans, {sum(len(s['nodules']) for s, _, _ in scans)} nodules, "
            f"SimpleITK threads {sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()}; {reps} repetitions",
            flush=True,
        )
        for rep in range(reps):
            waited.append(C.wait_quiet(max_wait=10 if args.quick else 240))
            fg = C.Foreign().__enter__()
            tot = dict.fromkeys(methods, 0.0)
            for s, image, hu in scans:
                src = grid_of(image)
                grid = resampled_grid(src, SPACING)
                outs = {}
                for m in ("sitk-bspline", "sitk-linear", "sitk-linear-1thread"):
                    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1 if m.endswith("1thread") else default_threads)
                    t = time.perf_counter()
                    img = resample(image, grid, m.split("-")[1])
                    tot[m] += time.perf_counter() - t
                    outs[m] = sitk.GetArrayFromImage(img)
                sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(default_threads)
                assert np.array_equal(outs["sitk-linear"], outs["sitk-linear-1thread"]), "threads changed the result"
                spacing_zyx = np.asarray(src.spacing[::-1])
                new_shape = np.round(np.asarray(hu.shape) * spacing_zyx / SPACING)
                factor = new_shape / np.asarray(hu.shape)
                t = time.perf_counter()
                z = zoom(hu, factor, order=3, mode="nearest")
                tot["scipy-zoom-cubic"] += time.perf_counter() - t
                if rep == 0:
                    assert np.allclose(grid.matrix, np.eye(3)), "the demo scans have identity directions"
                    n_in, n_out = np.asarray(hu.shape)[::-1], np.asarray(z.shape)[::-1]  # (x, y, z)
                    placed = {
                        "original": (hu, src.origin, src.spacing),
                        "sitk-bspline": (outs["sitk-bspline"], grid.origin, grid.spacing),
                        "sitk-linear": (outs["sitk-linear"], grid.origin, grid.spacing),
                        "sitk-linear-1thread": (outs["sitk-linear-1thread"], grid.origin, grid.spacing),
                        "scipy-zoom-cubic": (z, src.origin, np.asarray(src.spacing) * (n_in - 1) / (n_out - 1)),
                        "scipy-zoom-cubic (reference coordinates)": (z, src.origin, (spacing_zyx / factor)[::-1]),
                    }
                    for nod in s["nodules"]:
                        world = np.asarray(nod["world"])
                        radius = nod["diameter_mm"] / 2 + 2.5
                        before = centroid_world(hu, src.origin, src.spacing, world, radius)
                        for m, (v, o, st) in placed.items():
                            after = centroid_world(v, o, st, world, radius)
                            ok = after is not None and before is not None
                            errors[m].append(
                                None
                                if not ok
                                else {
                                    "shift": float(np.linalg.norm(after - before) / SPACING),
                                    "truth": float(np.linalg.norm(after - world) / SPACING),
                                }
                            )
                del z, outs
            for m in methods:
                times[m].append(tot[m])
            fg.__exit__(None, None, None)
            foreign.append(fg.seconds)
            print(
                f"rep {rep + 1}/{reps}: "
                + ", ".join(f"{m} {tot[m]:.2f} s" for m in methods)
                + f" (waited {waited[-1]:.0f} s, foreign CPU {fg.seconds:.1f} s)",
                flush=True,
            )
    zoom_t = C.median(times["scipy-zoom-cubic"])
    rows = []
    for m in errors:
        base = m.split(" ")[0]
        e = [v for v in errors[m] if v is not None]
        t = C.median(times[base]) if base in times else None
        shift = [v["shift"] for v in e]
        truth_e = [v["truth"] for v in e]
        rows.append(
            {
                "method": m,
                "seconds": t / len(scans) if t else None,
                "speedup": zoom_t / t if t else None,
                "shift_med": float(np.median(shift)) if e and m != "original" else None,
                "shift_max": max(shift) if e and m != "original" else None,
                "truth_med": float(np.median(truth_e)) if e else None,
                "truth_max": max(truth_e) if e else None,
                "within": sum(v <= 0.5 for v in shift) if m != "original" else None,
                "nodules": len(e),
            }
        )
    table = C.table(
        rows,
        [
            ("method", "method", ""),
            ("seconds", "s per scan", ".2f"),
            ("speedup", "x faster than zoom", ".1f"),
            ("shift_med", "shift median (vox)", ".3f"),
            ("shift_max", "shift max (vox)", ".3f"),
            ("within", "shift <= 0.5 vox", "d"),
            ("nodules", "of nodules", "d"),
            ("truth_med", "vs truth median (vox)", ".3f"),
            ("truth_max", "vs truth max (vox)", ".3f"),
        ],
        f"Resampling to {SPACING} mm (times: medians of {reps} repetitions; centres from repetition 1, "
        f"deterministic; output voxels of {SPACING} mm)",
    )
    C.write_results(
        "resample",
        args,
        {
            "demo": demo,
            "summary": rows,
            "times": times,
            "waited_s": waited,
            "foreign_s": foreign,
            "errors": errors,
            "table": table,
        },
    )


if __name__ == "__main__":
    main()
