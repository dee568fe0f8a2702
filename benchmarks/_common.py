"""Shared helpers of the benchmark scripts: data, the ctpatch steps as the workflow runs them, tables.

Every step is run the way Snakemake runs it (``python -m ctpatch.<step>`` in its own process,
``mpiexec -n N`` for the extraction), so start-up costs are included.  Peak RSS of a step is the
``ru_maxrss`` of its process (``os.wait4``); for MPI ranks, each rank reports its own through
``benchmarks/_rank.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
PY = sys.executable
ENV = dict(
    os.environ,
    PYTHONPATH=os.pathsep.join([str(REPO / "workflow"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
)
#: the extraction's environment, as the workflow's extract_patches rule sets it: one BLAS/OpenMP
#: thread per rank (default thread pools make the ranks fight over the cores)
MPI_ENV = dict(ENV, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")

# ~10 nodules per full-size scan (512 x 512 x 150-300), as the issue asks
FULL_DEMO = {"subsets": 1, "scans_per_subset": 3, "slices": [150, 300], "nodules_per_scan": [9, 11]}
QUICK_DEMO = {"subsets": 1, "scans_per_subset": 2, "size_xy": 160, "slices": [50, 70], "nodules_per_scan": [2, 3]}


def arg_parser(doc: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 repetitions on small data")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 5, --quick 2)")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temp folder, removed at the end)")
    ap.add_argument(
        "--out",
        default=None,
        help="results JSON (default benchmarks/results/<name>.json; --quick writes <name>.quick.json)",
    )
    return ap


def reps_of(args) -> int:
    n = args.reps or (2 if args.quick else 5)
    if not args.quick and n < 5 and not args.out:
        raise SystemExit(
            "full runs take at least 5 repetitions (medians of >= 5); use --quick for a smoke run, "
            "or --out to write an exploratory run elsewhere"
        )
    return n


class Workdir:
    """A scratch folder, removed at the end unless the user named it."""

    def __init__(self, path=None, prefix="ctpatch-bench-"):
        self.keep = path is not None
        self.path = Path(path) if path else Path(tempfile.mkdtemp(prefix=prefix))
        self.path.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc):
        if not self.keep:
            shutil.rmtree(self.path, ignore_errors=True)
        return False


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else float("nan")


def machine() -> dict:
    import h5py
    import numpy
    import SimpleITK

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "h5py": h5py.__version__,
        "hdf5": h5py.version.hdf5_version,
        "simpleitk": SimpleITK.Version_VersionString(),
        "loadavg_when_written": [round(v, 2) for v in os.getloadavg()],
    }


def write_results(name: str, args, data: dict) -> Path:
    path = Path(args.out) if args.out else RESULTS / (f"{name}.quick.json" if args.quick else f"{name}.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {
        "benchmark": name,
        "quick": bool(args.quick),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "machine": machine(),
        **data,
    }
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
    print(f"\nresults written to {path}")
    return path


def table(rows: list[dict], cols: list[tuple[str, str, str]], title: str = "") -> str:
    """A plain-text table; ``cols`` is (key, header, format)."""
    cells = [[h for _, h, _ in cols]]
    for r in rows:
        cells.append([("" if r.get(k) is None else (format(r[k], f) if f else str(r[k]))) for k, _, f in cols])
    widths = [max(len(c[i]) for c in cells) for i in range(len(cols))]
    lines = [
        ("  ".join(c[i].rjust(widths[i]) if i else c[i].ljust(widths[i]) for i in range(len(cols)))) for c in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    out = (title + "\n" if title else "") + "\n".join(lines)
    print(out)
    return out


# ---------------------------------------------------------------- running steps
def run(cmd, log: Path | None = None, env=None) -> dict:
    """Run a command; return wall seconds and the process's peak RSS (bytes, via wait4)."""
    t0 = time.perf_counter()
    out = open(log, "w") if log else subprocess.DEVNULL
    try:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, env=env or ENV)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log:
            out.close()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = Path(log).read_text()[-3000:] if log else ""
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{tail}")
    return {"seconds": wall, "max_rss": usage.ru_maxrss * 1024}


def make_data(root: Path, demo: dict, seed: int = 0) -> list:
    from ctpatch.luna16.demo import write_dataset

    return write_dataset(root, demo, seed)


def luna_settings(root: Path, **over) -> dict:
    """The settings the workflow gives the extraction (scope ``patches``, ctpatch.settings) for a LUNA16
    folder ``root``: ``over`` (luna16 sections) over the schema defaults."""
    from ctpatch.settings import luna16_settings, validate

    return luna16_settings(validate({"luna16": {**over, "root": str(root)}})).to_dict()


def settings_file(settings: dict, path: Path, scope: str) -> Path:
    """Write ``settings`` as the workflow's settings file of ``scope``; return its path."""
    from ctpatch.settings import write_settings

    write_settings(settings, path, scope)
    return path


def convert_scans(scans: list[Path], vol_dir: Path, settings: dict, workers: int = 1, logs: Path | None = None) -> dict:
    """``python -m ctpatch.luna16.convert`` per scan, ``workers`` at a time; wall time and each scan's sidecar seconds."""
    vol_dir.mkdir(parents=True, exist_ok=True)
    conv = settings_file(
        {"resample": settings["resample"], "normalize": settings["normalize"], "mode": "luna16"},
        vol_dir / "convert.settings.json",
        "convert",
    )

    def one(scan: Path):
        r = run(
            [
                PY,
                "-m",
                "ctpatch.luna16.convert",
                "--scan",
                scan,
                "--npy-out",
                vol_dir / f"{scan.stem}.npy",
                "--json-out",
                vol_dir / f"{scan.stem}.json",
                "--settings-file",
                conv,
            ],
            log=(logs / f"convert-{scan.stem}.log") if logs else None,
        )
        side = json.loads((vol_dir / f"{scan.stem}.json").read_text())
        return {
            "uid": scan.stem,
            "process_seconds": r["seconds"],
            "max_rss": r["max_rss"],
            **side["seconds"],
            "shape_zyx": side["shape"],
        }

    t0 = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        per_scan = list(pool.map(one, scans))
    return {"seconds": time.perf_counter() - t0, "scans": per_scan}


def scan_sidecars(vol_dir: Path) -> list[Path]:
    """The converted scans' JSON sidecars in ``vol_dir`` (not the conversion's settings file written there)."""
    return sorted(p for p in vol_dir.glob("*.json") if p.name != "convert.settings.json")


def make_labels(subset: str, vol_dir: Path, annotations: Path, lab_dir: Path, sidecars: list | None = None) -> dict:
    sidecars = sidecars if sidecars is not None else scan_sidecars(vol_dir)
    return run(
        [
            PY,
            "-m",
            "ctpatch.luna16.labels",
            "--subset",
            subset,
            "--sidecars",
            *sidecars,
            "--annotations",
            annotations,
            "--masks-dir",
            lab_dir / "masks",
            "--table-out",
            lab_dir / "nodules.tsv",
        ]
    )


def luna_inputs(vol_dir: Path, lab_dir: Path, sidecars: list | None = None) -> dict:
    sidecars = sidecars if sidecars is not None else scan_sidecars(vol_dir)
    return {
        "sidecars": [str(p) for p in sidecars],
        "masks_dir": str(lab_dir / "masks"),
        "nodules": str(lab_dir / "nodules.tsv"),
        "candidates": None,
    }


def luna_input_args(inputs: dict) -> list:
    """The extraction's inputs (:func:`luna_inputs`) as the command line of ``ctpatch.luna16.extract`` and ``.verify``."""
    cand = ["--candidates", inputs["candidates"]] if inputs["candidates"] else []
    return ["--sidecars", *inputs["sidecars"], "--masks-dir", inputs["masks_dir"], *cand]


def extract(
    ranks: int, vol_dir: Path, lab_dir: Path, out: Path, settings: dict, stats_dir: Path, sidecars: list | None = None
) -> dict:
    """``mpiexec -n N python -m ctpatch.luna16.extract`` through ``_rank.py`` (writes the final file ``out``);
    wall time and per-rank stats."""
    inputs = luna_inputs(vol_dir, lab_dir, sidecars)
    stats_dir.mkdir(parents=True, exist_ok=True)
    for old in stats_dir.glob("rank*.json"):
        old.unlink()
    r = run(
        [
            "mpiexec",
            "-n",
            ranks,
            PY,
            BENCH / "_rank.py",
            "--stats-dir",
            stats_dir,
            "--",
            "--mode",
            "luna16",
            "--ranks",
            ranks,
            "--out",
            out,
            "--settings-file",
            settings_file(settings, stats_dir / "patches.json", "patches"),
            "--nodules",
            inputs["nodules"],
            *luna_input_args(inputs),
        ],
        log=stats_dir / "extract.log",
        env=MPI_ENV,
    )
    ranks_stats = [json.loads(p.read_text()) for p in sorted(stats_dir.glob("rank*.json"))]
    if len(ranks_stats) != ranks:
        raise RuntimeError(f"expected {ranks} rank reports in {stats_dir}, got {len(ranks_stats)}")
    return {"seconds": r["seconds"], "ranks": ranks_stats}


def verify(out: Path, vol_dir: Path, lab_dir: Path, settings: dict, sidecars: list | None = None) -> dict:
    """``python -m ctpatch.luna16.verify`` as the workflow's verify_patches rule runs it; wall time and the report."""
    inputs = luna_inputs(vol_dir, lab_dir, sidecars)
    report = out.with_suffix(".verify.json")
    r = run(
        [
            PY,
            "-m",
            "ctpatch.luna16.verify",
            "--patches",
            out,
            "--nodules",
            lab_dir / "nodules.tsv",
            "--settings-file",
            settings_file(settings, Path(str(out) + ".settings.json"), "patches"),
            *luna_input_args(inputs),
            "--report-out",
            report,
        ]
    )
    r["report"] = json.loads(report.read_text())
    if not r["report"]["ok"]:
        raise RuntimeError(f"verification failed: {r['report']['failures']}")
    return r


def file_bytes(*paths) -> int:
    total = 0
    for p in paths:
        p = Path(p)
        total += sum(f.stat().st_size for f in p.rglob("*") if f.is_file()) if p.is_dir() else p.stat().st_size
    return total


# ---------------------------------------------------------------- a shared machine
# Other people's jobs run on this machine too.  Before each repetition we wait (up to a limit)
# until the CPUs are idle, and during it we count the CPU seconds spent by processes that are
# not ours ("foreign"), so a disturbed repetition can be seen in the results.
_TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    with open("/proc/stat") as fh:
        v = [int(x) for x in fh.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq = v[:7]
    return (user + nice + system + irq + softirq) / _TICK


def _own_seconds() -> float:
    import resource

    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


def wait_quiet(max_wait: float = 240.0, busy_below: float = 0.15, window: float = 2.0) -> float:
    """Wait until the whole machine is idle (< ``busy_below`` of all CPUs busy over ``window`` s); seconds waited."""
    t0 = time.perf_counter()
    ncpu = os.cpu_count() or 1
    while True:
        b0 = _busy_seconds()
        time.sleep(window)
        if (_busy_seconds() - b0) / (window * ncpu) < busy_below or time.perf_counter() - t0 > max_wait:
            return time.perf_counter() - t0


class Foreign:
    """CPU seconds used by other processes while the block ran (machine busy time minus ours)."""

    def __enter__(self):
        self.b0, self.o0 = _busy_seconds(), _own_seconds()
        return self

    def __exit__(self, *exc):
        self.seconds = max(0.0, (_busy_seconds() - self.b0) - (_own_seconds() - self.o0))
        return False


def read_rates(
    files, kinds=("nodule", "non_nodule"), single: int = 200, batch: int = 512, batch_size: int = 64, cache_mb=None
) -> dict:
    """Reading a LUNA16 file through ``ctpatch.readers``, in one process (page cache warm), patches/s:

    * ``single_per_s``: ``single`` random rows of ``PatchDataset(files, kinds)`` read one by one
      (image and label, as a training loader's ``__getitem__``), a new dataset (cold reader caches);
    * ``batch_per_s``: ``iter_batches(files, kinds, batch_size, workers=0, shuffle=True)`` until
      ``batch`` patches (images and labels, each batch's rows read in file order).

    ``cache_mb``: the volumes layout's decoded-brick cache (default: ctpatch's; 0: every brick decoded
    each time it is needed).
    """
    import numpy as np

    from ctpatch.luna16 import layouts as crop_reader
    from ctpatch.readers import PatchDataset, iter_batches

    default = crop_reader.BRICK_CACHE_MB
    if cache_mb is not None:
        crop_reader.BRICK_CACHE_MB = cache_mb
    try:
        return _read_rates(files, kinds, single, batch, batch_size, np, PatchDataset, iter_batches)
    finally:
        crop_reader.BRICK_CACHE_MB = default


def _read_rates(files, kinds, single, batch, batch_size, np, PatchDataset, iter_batches) -> dict:
    from ctpatch.luna16.layouts import BRICKS

    BRICKS.clear()  # each measurement starts with no decoded brick

    files = [str(f) for f in files]
    ds = PatchDataset(files, tuple(kinds))
    order = np.random.default_rng(0).permutation(len(ds))[: min(single, len(ds))]
    t = time.perf_counter()
    for i in order:
        ds[int(i)]
    t_single = time.perf_counter() - t
    ds.close()
    seen = 0
    BRICKS.clear()
    t = time.perf_counter()
    for b in iter_batches(files, tuple(kinds), batch_size, 0, shuffle=True, seed=0, copy=False):
        seen += len(b.index)
        if seen >= batch:
            break
    t_batch = time.perf_counter() - t
    return {"single_per_s": len(order) / t_single, "batch_per_s": seen / t_batch, "single": len(order), "batch": seen}
