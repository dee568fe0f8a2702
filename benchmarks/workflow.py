"""Side by side (issue 21): whole ctpatch runs against the reference programs' own code, alternated run by run.

    python benchmarks/workflow.py                     # the three comparisons, 3 alternated repetitions
    python benchmarks/workflow.py --quick             # 1 repetition of everything (a smoke run)
    python benchmarks/workflow.py --only ldct16 --reps 5
    python benchmarks/workflow.py --only luna --scans 1 --quick   # LUNA16 on 1 scan (a lighter smoke run)

The reference programs are clones, outside this repository, found through environment variables;
a comparison whose clone is not set (or lacks the expected files) is skipped with a message:

* ``CTPATCH_REF_CASED``: a clone of taki0112/CASED-Tensorflow (LUNA16 preprocessing);
* ``CTPATCH_REF_MPI4PY_PATCHES``: a clone of prabhatkc/mpi4py_patches (LDCT patches).

Comparisons (each repetition runs one comparison's programs one after the other, reference first):

* ``luna`` -- LUNA16-like, ``--scans`` (3) full-size generated scans (1 subset, ``nodules_per_scan:
  [3, 4]``, the demo generator's 512² x 110-150 slices), generated once before the runs with
  ``python -m ctpatch.luna16.demo`` from the settings ``luna16.root: demo`` would give the workflow
  (same scans), so neither program's time includes making them.  Reference: CASED-Tensorflow's
  ``preprocessing/all_in_one.py`` **replayed** by ``benchmarks/_cased.py`` with the clone's own functions
  (imported, not copied) and **the nodule centre in x, y, z order** (all_in_one.py swaps x and z and
  crashes on some scans; see ``_cased.py``): cubic resampling, float64 patches, 57 shifted patches
  per nodule and 3 random negatives per nodule patch, one lzf file.  ctpatch: ``snakemake --cores 1``
  and ``--cores 2`` (``layout: full``), and ``--cores 2`` with ``output.layout: volumes``; the
  ``luna16`` options of ``config/config.yaml``.  Targets: CASED / ctpatch >= 3.5 (--cores 1), >= 6
  (--cores 2), >= 10 (volumes); at --cores 1, >= 85 % of ctpatch's wall time inside conversion,
  labels and extraction (the union of the ``convert_mhd``, ``make_labels`` and ``extract_patches``
  job intervals).
* ``ldct16`` -- the reference's 16-pair demo: the 16 real pairs of ``../shared/data/ldct`` (4
  patients x 4 slices), the options of its ``demo_run.sh`` "mpi_run" line (``--patch-size p55
  --out-dtype float16 --air_threshold --ds_augment --rot_augment --sanity_plot_check --dose_blend
  --nsplit 2 --multi-patients``, the sorted input/target folder names).  Reference: ``mpiexec -n 2
  python main.py ... --mpi_run`` and serially (``python main.py ...``, the same options without
  ``--mpi_run``).  ctpatch: ``snakemake --cores 2 --configfile config/ldct.yaml`` (the same options;
  verification and sanity pictures included).  Target: reference mpiexec -n 2 / ctpatch >= 1.5.
* ``ldct160`` -- the 16 real pairs copied ``--copies`` (10) times under distinct patient folder
  names (``L096r00`` ...; 160 pairs, 40 patients), the same options.  Reference ``mpiexec -n 2``;
  ctpatch ``--cores 2``.  Target: reference / ctpatch >= 4.

**The one patch to a reference:** under numpy >= 2 the reference's MPI path fails at its final print
(``mpi_h5patches.py`` formats one-element arrays with ``%.4f``: "only 0-dimensional arrays can be
converted to Python scalars", after the patches are made and before the files are written).  The
clone is copied to a temp folder (without its ``.git`` and demo data) and that one print is made to
index element ``[0]`` there; the clone and this repository are never changed.  The serial path
needs no patch.  CASED runs from the clone unchanged (``PYTHONDONTWRITEBYTECODE=1``: no
``__pycache__`` in it).

Every run is timed from outside: wall time from before the process starts to its exit, each in a
fresh folder (the reference's cwd, where it writes its ``sanity_check/`` pictures; ctpatch's
``--directory``), outputs deleted and ``os.sync()`` after it, untimed.  The references run with the
environment as it is plus ``MPLBACKEND=Agg`` (no thread limits: as a user runs them); ctpatch as
``snakemake --cores N --snakefile <repo>/Snakefile --directory <run> --configfile <yaml>`` with
``extract.tasks: N``.  Memory of each run, both programs:

* **peak RSS, one process** = ``ru_maxrss`` from ``os.wait4`` on the launched process: the largest
  peak of any one process of the run (the kernel carries reaped children's peaks up), e.g. rank 0
  of the reference, or ctpatch's largest job or rank;
* **peak RSS, all processes** = the largest sum of the RSS of the launched process and all its
  descendants, sampled every 0.25 s from ``/proc`` (shared pages counted once per process).

The machine's load: the 1-minute load average sampled during each run (mean and max; it includes
the run itself: ~1 at --cores 1, ~2 at 2 ranks, and lags by about a minute) and the CPU seconds
other processes used during it ("foreign CPU", from ``/proc/stat`` minus our own).  Before each run
the script waits (up to 30 s, 5 s with ``--quick``) for idle CPUs.

For every ctpatch run, from Snakemake's records (``.snakemake/metadata``: each job's start and end):
per-rule job seconds (summed over a rule's jobs; at --cores 2 they overlap), start-up (process
start to first job), tail (last job end to exit), the share of wall time inside the work rules.

Printed: medians of the repetitions per program, the ratios reference / ctpatch as the targets
state them (ratio of the medians; each repetition's own ratio in the JSON), the per-rule table of
ctpatch's runs.  Everything, every run and every job, in ``benchmarks/results/workflow.json``
(``workflow.quick.json`` with ``--quick``; ``workflow[.quick].partial.json`` after each run).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DATA = C.REPO.parent / "shared" / "data" / "ldct"
if not DATA.is_dir():  # a worktree next to the main checkout
    DATA = Path("/work/shared/data/ldct")
MB = 1e6

#: the clones, by environment variable, and the files that show a folder is one
CLONES = {
    "CTPATCH_REF_CASED": (
        "taki0112/CASED-Tensorflow",
        ["preprocessing/preprocess_utils.py", "preprocessing/all_in_one.py"],
    ),
    "CTPATCH_REF_MPI4PY_PATCHES": ("prabhatkc/mpi4py_patches", ["main.py", "mpi_h5patches.py", "serial_h5patches.py"]),
}
COMPARISONS = {
    "luna": ("LUNA16-like, {scans} full-size generated scans", "CTPATCH_REF_CASED"),
    "ldct16": ("LDCT, the reference's 16-pair demo", "CTPATCH_REF_MPI4PY_PATCHES"),
    "ldct160": ("LDCT, {pairs} pairs ({copies} x the 16 real pairs)", "CTPATCH_REF_MPI4PY_PATCHES"),
}
#: per comparison, the runs of one repetition in order: (key, program, label)
RUNS = {
    "luna": [
        ("cased", "reference", "CASED preprocessing, replayed (centre x, y, z)"),
        ("c1", "ctpatch", "--cores 1"),
        ("c2", "ctpatch", "--cores 2"),
        ("c2vol", "ctpatch", "--cores 2, layout volumes"),
    ],
    "ldct16": [
        ("mpi2", "reference", "mpiexec -n 2"),
        ("c2", "ctpatch", "--cores 2"),
        ("serial", "reference", "serial"),
    ],
    "ldct160": [
        ("mpi2", "reference", "mpiexec -n 2"),
        ("c2", "ctpatch", "--cores 2"),
    ],
}
#: the ratios the issue's targets state: (comparison, reference run, ctpatch run, target or None)
RATIOS = [
    ("luna", "cased", "c1", 3.5),
    ("luna", "cased", "c2", 6.0),
    ("luna", "cased", "c2vol", 10.0),
    ("ldct16", "mpi2", "c2", 1.5),
    ("ldct16", "serial", "c2", None),
    ("ldct160", "mpi2", "c2", 4.0),
]
#: LUNA16: the rules whose job time counts as "inside conversion, labels and extraction" (target >= 85 % at 1 core)
LUNA_WORK_RULES = ("convert_mhd", "make_labels", "extract_patches")
SHARE_TARGET = 0.85
MEMORY_TARGET_MB = 1500.0
#: the reference's demo options (demo_run.sh, "mpi_run"); the serial run drops --mpi_run
MPI4PY_OPTIONS = [
    "--patch-size",
    "p55",
    "--out-dtype",
    "float16",
    "--air_threshold",
    "--ds_augment",
    "--rot_augment",
    "--sanity_plot_check",
    "--dose_blend",
    "--nsplit",
    "2",
    "--input-gen-folder",
    "quarter_3mm_sharp_sorted",
    "--target-gen-folder",
    "full_3mm_sharp_sorted",
    "--multi-patients",
]
#: the print mpi_h5patches.py fails at under numpy >= 2, and what it becomes in the temp copy
MPI4PY_PRINT = (
    "(global_pre_norm_tar_min, global_pre_norm_tar_max,\\\n\t\tglobal_post_norm_tar_min, global_post_norm_tar_max)",
    "(global_pre_norm_tar_min[0], global_pre_norm_tar_max[0],\\\n\t\t"
    "global_post_norm_tar_min[0], global_post_norm_tar_max[0])",
)
REF_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {
    "MPLBACKEND": "Agg",
    "PYTHONDONTWRITEBYTECODE": "1",
}


# ---------------------------------------------------------------- measuring one process tree
def _proc_table() -> dict[int, tuple[int, int]]:
    """pid -> (ppid, rss bytes) of every process, from /proc/<pid>/stat."""
    page = os.sysconf("SC_PAGE_SIZE")
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                s = fh.read()
        except OSError:
            continue
        f = s[s.rfind(b")") + 2 :].split()  # fields from 3 (state) on; the name may hold spaces
        out[int(d)] = (int(f[1]), int(f[21]) * page)
    return out


class TreeSampler(threading.Thread):
    """Every ``every`` s: the summed RSS of ``pid`` and its descendants (peak kept) and the 1-min load average."""

    def __init__(self, pid: int, every: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak, self.loads = 0, []
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.loads.append(os.getloadavg()[0])
            table = _proc_table()
            kids: dict[int, list[int]] = {}
            for p, (pp, _) in table.items():
                kids.setdefault(pp, []).append(p)
            todo, rss = [self.pid], 0
            while todo:
                p = todo.pop()
                rss += table.get(p, (0, 0))[1]
                todo.extend(kids.get(p, ()))
            self.peak = max(self.peak, rss)
            if self.done.wait(self.every):
                return


def measure(cmd, cwd: Path, env: dict, log: Path) -> dict:
    """Run ``cmd`` in ``cwd``; wall seconds, peak RSS (one process, all processes), load, foreign CPU."""
    with open(log, "w") as out, C.Foreign() as fg:
        t0 = time.time()
        proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.time() - t0
        sampler.done.set()
        sampler.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{log.read_text()[-3000:]}")
    return {
        "t0": t0,
        "wall_s": wall,
        "peak_rss_process_mb": usage.ru_maxrss * 1024 / MB,
        "peak_rss_all_mb": sampler.peak / MB,
        "load_mean": sum(sampler.loads) / len(sampler.loads),
        "load_max": max(sampler.loads),
        "foreign_cpu_s": fg.seconds,
    }


# ---------------------------------------------------------------- the clones
def clone_of(var: str) -> tuple[Path | None, str]:
    """The clone named by ``var``, or None and why not."""
    repo, files = CLONES[var]
    val = os.environ.get(var)
    if not val:
        return None, f"{var} is not set (a clone of {repo})"
    path = Path(val).expanduser()
    missing = [f for f in files if not (path / f).is_file()]
    if missing:
        return None, f"{var}={val} is not a clone of {repo} (missing {', '.join(missing)})"
    return path.resolve(), ""


def clone_commit(path: Path) -> str | None:
    r = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


def mpi4py_copy(clone: Path, dst: Path) -> Path:
    """The clone's code copied to ``dst`` (no .git, no demo data), with the one print patched (see the docstring)."""
    shutil.copytree(clone, dst, ignore=shutil.ignore_patterns(".git", "raw_data*", "sanity_check", "__pycache__"))
    f = dst / "mpi_h5patches.py"
    text = f.read_text()
    old, new = MPI4PY_PRINT
    if text.count(old) != 1:
        raise SystemExit(f"{clone / 'mpi_h5patches.py'}: the final %.4f print to patch was not found exactly once")
    f.write_text(text.replace(old, new))
    return dst


# ---------------------------------------------------------------- data and configs
def load_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def luna_config(cores: int, scans: int, layout: str = "full") -> dict:
    cfg = load_yaml(C.REPO / "config" / "config.yaml")
    cfg["demo"] = {"subsets": 1, "scans_per_subset": scans, "nodules_per_scan": [3, 4]}
    cfg["luna16"]["root"] = "demo"
    cfg["luna16"].setdefault("output", {})["layout"] = layout
    cfg["extract"]["tasks"] = cores
    cfg["results"] = "results"
    return cfg


def luna_data(work: Path, scans: int) -> Path:
    """The scans ``luna16.root: demo`` gives the workflow, written once by its own step (same settings file)."""
    from ctpatch.settings import scope_settings, validate, write_settings

    settings = work / "demo.settings.json"
    write_settings(scope_settings(validate(luna_config(1, scans)), "demo"), settings, "demo")
    root = work / "luna16"
    C.run([C.PY, "-m", "ctpatch.luna16.demo", "--out", root, "--settings-file", settings])
    return root


def ldct_config(root: Path, cores: int) -> dict:
    cfg = load_yaml(C.REPO / "config" / "ldct.yaml")
    cfg["ldct"]["root"] = str(root)
    cfg.setdefault("extract", {})["tasks"] = cores
    cfg["results"] = "results"
    return cfg


def replicate(dst: Path, copies: int, cfg_ldct: dict) -> Path:
    """Every real patient folder copied ``copies`` times under distinct names (``L096r00`` ...)."""
    for k in range(copies):
        for src in sorted(p for p in DATA.iterdir() if (p / cfg_ldct["input_dir"]).is_dir()):
            for sub in (cfg_ldct["input_dir"], cfg_ldct["target_dir"]):
                shutil.copytree(src / sub, dst / f"{src.name}r{k:02d}" / sub)
    return dst


# ---------------------------------------------------------------- ctpatch runs and their records
def job_records(run_dir: Path, t0: float) -> list[dict]:
    """One row per job from Snakemake's metadata (outputs of one job share its log files)."""
    jobs: dict = {}
    md = run_dir / ".snakemake" / "metadata"
    for p in (f for f in md.rglob("*") if f.is_file()) if md.is_dir() else []:
        try:
            d = json.loads(p.read_text())
        except (ValueError, OSError):
            continue
        out = base64.urlsafe_b64decode("".join(p.relative_to(md).parts)).decode(errors="replace")
        key = (d.get("rule"), tuple(d.get("log") or [out]))
        s, e = d.get("starttime"), d.get("endtime")
        if s is None or e is None:
            continue
        j = jobs.setdefault(key, {"rule": d.get("rule"), "log": list(key[1]), "outputs": [], "start": s, "end": e})
        j["outputs"].append(out)
        j["start"], j["end"] = min(j["start"], s), max(j["end"], e)
    rows = []
    for j in jobs.values():
        j["start"], j["end"] = j["start"] - t0, j["end"] - t0
        j["end"] = max(j["end"], j["start"])  # `run:` rules record end <= start
        j["seconds"] = j["end"] - j["start"]
        rows.append(j)
    return sorted(rows, key=lambda r: r["start"])


def union(intervals, lo: float, hi: float) -> float:
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted((max(lo, s), min(hi, e)) for s, e in intervals):
        if e <= s:
            continue
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    return total + (cur_e - cur_s if cur_e is not None else 0.0)


def ctpatch_run(run_dir: Path, cfg: dict, cores: int) -> dict:
    import yaml

    cfgfile = run_dir / "bench-config.yaml"
    cfgfile.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [C.PY, "-m", "snakemake", "--cores", cores, "--snakefile", C.REPO / "Snakefile"]
    cmd += ["--directory", run_dir, "--configfile", cfgfile]
    r = measure(cmd, run_dir, C.ENV, run_dir / "snakemake.out")
    wall = r["wall_s"]
    jobs = job_records(run_dir, r["t0"])
    per_rule: dict = {}
    for j in jobs:
        per_rule[j["rule"]] = per_rule.get(j["rule"], 0.0) + j["seconds"]
    first = min((j["start"] for j in jobs), default=wall)
    last = max((j["end"] for j in jobs), default=wall)
    busy = union([(j["start"], j["end"]) for j in jobs], 0.0, wall)
    work = [(j["start"], j["end"]) for j in jobs if j["rule"] in LUNA_WORK_RULES]
    extract = [(j["start"], j["end"]) for j in jobs if j["rule"] == "extract_patches"]
    r.update(
        {
            "jobs_n": len(jobs),
            "rule_s": per_rule,
            "startup_s": first,
            "tail_s": wall - last,
            "idle_between_jobs_s": (last - first) - busy,
            "extract_share": union(extract, 0.0, wall) / wall,
            "work_share": union(work, 0.0, wall) / wall if cfg["mode"] == "luna16" else None,
            "patches": count_patches(run_dir / "results"),
            "jobs": jobs,
        }
    )
    return r


def count_patches(folder: Path) -> int | None:
    """Patches in every HDF5 file under ``folder`` (LUNA16 labels of both kinds; LDCT input rows)."""
    try:
        import h5py

        import ctpatch  # noqa: F401  (registers the filters through hdf5plugin)

        n = 0
        for f in sorted(folder.rglob("*.h5")):
            with h5py.File(f, "r") as h:
                if "label_nodule" in h:  # LUNA16 (ctpatch, any layout, and CASED): one label per patch
                    n += len(h["label_nodule"]) + len(h["label_non_nodule"])
                elif "input" in h and isinstance(h["input"], h5py.Dataset):  # LDCT (both programs)
                    n += len(h["input"])
        return n
    except Exception as exc:  # noqa: BLE001  (only a label for the table)
        print(f"  (patches not counted: {exc})", flush=True)
        return None


# ---------------------------------------------------------------- one run of either program
def one_run(comp: str, key: str, run_dir: Path, ctx: dict, args) -> dict:
    run_dir.mkdir(parents=True)
    if comp == "luna" and key == "cased":
        cmd = [
            C.PY,
            C.BENCH / "_cased.py",
            "--clone",
            ctx["clone"],
            "--root",
            ctx["root"],
            "--out-dir",
            run_dir / "out",
        ]
        r = measure(cmd, run_dir, REF_ENV, run_dir / "reference.log")
        r["patches"] = count_patches(run_dir / "out")
    elif comp == "luna":
        cfg = luna_config(1 if key == "c1" else 2, args.scans, "volumes" if key == "c2vol" else "full")
        cfg["luna16"]["root"] = str(ctx["root"])
        r = ctpatch_run(run_dir, cfg, cfg["extract"]["tasks"])
    elif key == "c2":
        r = ctpatch_run(run_dir, ldct_config(ctx["root"], 2), 2)
    else:
        out = run_dir / "out" / "p55_ldhd_patches.h5"
        cmd = [C.PY, ctx["code"] / "main.py", "--input-folder", ctx["root"], "--output-fname", out, *MPI4PY_OPTIONS]
        if key == "mpi2":
            cmd = ["mpiexec", "-n", 2, *cmd, "--mpi_run"]
        r = measure(cmd, run_dir, REF_ENV, run_dir / "reference.log")
        r["patches"] = count_patches(run_dir / "out")
    r["out_mb"] = C.file_bytes(*(p for p in (run_dir / "out", run_dir / "results") if p.exists())) / MB
    r.pop("t0", None)
    return r


def prepare(comp: str, work: Path, args, clones: dict) -> dict:
    ldct = load_yaml(C.REPO / "config" / "ldct.yaml")["ldct"]
    if comp == "luna":
        return {"clone": clones["CTPATCH_REF_CASED"], "root": luna_data(work / "data_luna", args.scans)}
    code = work / "mpi4py_patches"
    if not code.exists():
        mpi4py_copy(clones["CTPATCH_REF_MPI4PY_PATCHES"], code)
    root = DATA if comp == "ldct16" else replicate(work / "data_ldct160", args.copies, ldct)
    return {"code": code, "root": root}


# ---------------------------------------------------------------- main
def main() -> None:
    ap = C.arg_parser(__doc__)
    ap._option_string_actions["--reps"].help = "alternated repetitions (default 3, --quick 1)"
    ap._option_string_actions["--quick"].help = "1 repetition of everything (a smoke run; same data)"
    ap.add_argument("--only", default="luna,ldct16,ldct160", help="comma list of luna, ldct16, ldct160 (default all)")
    ap.add_argument("--scans", type=int, default=3, help="LUNA16: generated full-size scans (default 3)")
    ap.add_argument("--copies", type=int, default=10, help="ldct160: copies of the 16 real pairs (10 = 160 pairs)")
    ap.add_argument(
        "--report-from", default=None, help="only print the tables of a results JSON (or .partial.json); writes nothing"
    )
    ap.add_argument("--keep-runs", action="store_true", help="keep every run's folder (with --workdir)")
    args = ap.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    comps = [c for c in args.only.split(",") if c]
    unknown = [c for c in comps if c not in COMPARISONS]
    if unknown:
        raise SystemExit(f"--only: unknown comparison(s) {unknown}; expected some of {list(COMPARISONS)}")
    if args.report_from:
        doc = json.loads(Path(args.report_from).read_text())
        report(args, doc["runs"], doc.get("skipped", {}), doc.get("references", {}), write=False)
        return
    clones, skipped, refs = {}, {}, {}
    for var in dict.fromkeys(COMPARISONS[c][1] for c in comps):
        path, why = clone_of(var)
        if path:
            clones[var] = path
            refs[var] = {"repo": CLONES[var][0], "path": str(path), "commit": clone_commit(path)}
    for c in comps:
        var = COMPARISONS[c][1]
        if var not in clones:
            skipped[c] = clone_of(var)[1]
            print(f"skipped {c}: {skipped[c]}", flush=True)
    todo = [c for c in comps if c not in skipped]
    partial = C.RESULTS / ("workflow.quick.partial.json" if args.quick else "workflow.partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    results = []
    with C.Workdir(args.workdir, prefix="ctpatch-wfbench-") as work:
        print(f"comparisons {todo}, {reps} repetition(s); scratch {work}", flush=True)
        for comp in todo:
            ctx = prepare(comp, work, args, clones)
            for rep in range(reps):
                for key, program, label in RUNS[comp]:
                    waited = C.wait_quiet(max_wait=5 if args.quick else 30)
                    run_dir = work / "runs" / f"{comp}-{key}-r{rep}"
                    r = one_run(comp, key, run_dir, ctx, args)
                    r.update({"comparison": comp, "run": key, "program": program, "label": label, "rep": rep})
                    r["work"] = describe(comp, args)
                    r["waited_s"] = waited
                    results.append(r)
                    print(
                        f"{comp} rep {rep + 1} {program} {label}: {r['wall_s']:.1f} s, "
                        f"peak RSS {r['peak_rss_process_mb']:.0f} MB (one process) / {r['peak_rss_all_mb']:.0f} MB "
                        f"(all), {r['patches']} patches, load {r['load_mean']:.1f}, "
                        f"foreign CPU {r['foreign_cpu_s']:.0f} s",
                        flush=True,
                    )
                    doc = {"command": " ".join(sys.argv), "references": refs, "skipped": skipped, "runs": results}
                    partial.write_text(json.dumps(doc, indent=1) + "\n")
                    if not args.keep_runs:
                        shutil.rmtree(run_dir, ignore_errors=True)
                    os.sync()
    report(args, results, skipped, refs)


def describe(comp: str, args) -> str:
    return COMPARISONS[comp][0].format(scans=args.scans, copies=args.copies, pairs=16 * args.copies)


def report(args, results, skipped, refs, write: bool = True) -> None:
    """Print the tables of ``results``; with ``write``, write everything to the results JSON."""
    med = C.median
    rows, ratios, rule_rows = [], [], []
    comps = list(dict.fromkeys(r["comparison"] for r in results))
    for comp in comps:
        for key, program, label in RUNS[comp]:
            rs = [r for r in results if r["comparison"] == comp and r["run"] == key]
            if not rs:
                continue
            walls = [r["wall_s"] for r in rs]
            rows.append(
                {
                    "work": rs[0].get("work") or describe(comp, args),
                    "program": program,
                    "run": label,
                    "n": len(rs),
                    "wall": med(walls),
                    "range": f"{min(walls):.1f}-{max(walls):.1f}",
                    "rss1": med([r["peak_rss_process_mb"] for r in rs]),
                    "rssall": med([r["peak_rss_all_mb"] for r in rs]),
                    "patches": med([r["patches"] for r in rs]),
                    "load": med([r["load_mean"] for r in rs]),
                    "loadmax": max(r["load_max"] for r in rs),
                    "foreign": med([r["foreign_cpu_s"] for r in rs]),
                }
            )
            if program == "ctpatch":
                rule_rows.append(
                    {
                        "run": f"{comp} {label}",
                        "wall": med(walls),
                        "startup": med([r["startup_s"] for r in rs]),
                        "tail": med([r["tail_s"] for r in rs]),
                        "idle": med([r["idle_between_jobs_s"] for r in rs]),
                        **{
                            k: med([r["rule_s"].get(k, 0.0) for r in rs])
                            for k in sorted({k for r in rs for k in r["rule_s"]})
                        },
                    }
                )
    for comp, ref, ours, target in RATIOS:
        rr = [r for r in results if r["comparison"] == comp and r["run"] == ref]
        oo = [r for r in results if r["comparison"] == comp and r["run"] == ours]
        if not rr or not oo:
            continue
        v = med([r["wall_s"] for r in rr]) / med([o["wall_s"] for o in oo])
        per_rep = [
            r["wall_s"] / o["wall_s"] for r in rr for o in oo if r["rep"] == o["rep"]
        ]  # the same repetition's runs
        ratios.append(
            {
                "what": f"{comp}: reference {label_of(comp, ref)} / ctpatch {label_of(comp, ours)}, wall",
                "value": v,
                "per_rep": per_rep,
                "reps": f"{min(per_rep):.2f}-{max(per_rep):.2f}" if per_rep else "",
                "target": f">= {target}" if target else "",
                "met": ("yes" if v >= target else "NO") if target else "",
            }
        )
    c1 = [r for r in results if r["comparison"] == "luna" and r["run"] == "c1" and r.get("work_share") is not None]
    if c1:
        v = med([r["work_share"] for r in c1])
        ratios.append(
            {
                "what": "luna: ctpatch --cores 1, share of wall inside " + " + ".join(LUNA_WORK_RULES),
                "value": v,
                "per_rep": [r["work_share"] for r in c1],
                "reps": f"{min(r['work_share'] for r in c1):.2f}-{max(r['work_share'] for r in c1):.2f}",
                "target": f">= {SHARE_TARGET}",
                "met": "yes" if v >= SHARE_TARGET else "NO",
            }
        )
    ours = [r for r in results if r["program"] == "ctpatch"]
    if ours:
        v = max(r["peak_rss_process_mb"] for r in ours)
        ratios.append(
            {
                "what": "ctpatch: largest peak RSS of one process, any run (MB)",
                "value": v,
                "per_rep": [],
                "reps": "",
                "target": f"<= {MEMORY_TARGET_MB:.0f}",
                "met": "yes" if v <= MEMORY_TARGET_MB else "NO",
            }
        )
    t1 = C.table(
        rows,
        [
            ("work", "work", ""),
            ("program", "program", ""),
            ("run", "run", ""),
            ("n", "runs", "d"),
            ("wall", "wall s (median)", ".1f"),
            ("range", "range s", ""),
            ("rss1", "peak RSS one process MB", ".0f"),
            ("rssall", "peak RSS all processes MB", ".0f"),
            ("patches", "patches", ".0f"),
            ("load", "load 1-min (mean)", ".2f"),
            ("loadmax", "load max", ".2f"),
            ("foreign", "foreign CPU s", ".0f"),
        ],
        "Whole runs timed from outside, reference and ctpatch alternated run by run (medians)",
    )
    t2 = C.table(
        ratios,
        [
            ("what", "ratio", ""),
            ("value", "value", ".2f"),
            ("reps", "per repetition", ""),
            ("target", "target", ""),
            ("met", "met", ""),
        ],
        "\nRatios (of the medians; 'per repetition': each repetition's runs against each other)",
    )
    rules = sorted({k for row in rule_rows for k in row if k not in ("run", "wall", "startup", "tail", "idle")})
    t3 = C.table(
        rule_rows,
        [("run", "ctpatch run", ""), ("wall", "wall", ".1f"), ("startup", "start-up", ".1f")]
        + [(k, k, ".1f") for k in rules]
        + [("idle", "idle between jobs", ".1f"), ("tail", "tail", ".1f")],
        "\nctpatch: seconds per rule (job time summed over the rule's jobs; overlapping at --cores 2), medians",
    )
    notes = [
        "CASED: all_in_one.py's loop replayed with the clone's functions, the nodule centre in x, y, z "
        "order (all_in_one.py swaps x and z and crashes on some scans).",
        "mpi4py_patches: its MPI path's final print (%.4f of one-element arrays, fails under numpy >= 2) "
        "patched in a temp copy to index [0]; the serial path unchanged.",
    ]
    for n in notes:
        print("note: " + n)
    for comp, why in skipped.items():
        print(f"skipped {comp}: {why}")
    if not write:
        return
    C.write_results(
        "workflow",
        args,
        {
            "comparisons": {c: next(r["work"] for r in results if r["comparison"] == c) for c in comps},
            "references": refs,
            "skipped": skipped,
            "notes": notes,
            "summary": rows,
            "ratios": ratios,
            "ctpatch_rules": rule_rows,
            "tables": "\n\n".join([t1, t2, t3]),
            "runs": results,
        },
    )


def label_of(comp: str, key: str) -> str:
    return next(label for k, _, label in RUNS[comp] if k == key)


if __name__ == "__main__":
    main()
