"""Whole-workflow benchmark (issue 14, item 4): complete ``snakemake --cores N`` runs timed from outside,
and the share of their wall time spent inside the work steps.

    python benchmarks/workflow.py                    # 4 scenarios x --cores 1, 2 x 3 repetitions
    python benchmarks/workflow.py --quick            # 1 repetition (a smoke run / a run against a deadline)
    python benchmarks/workflow.py --scenarios c,d --cores 2 --reps 5

Scenarios (data in a temp folder, never in the repo; every run gets a fresh working directory):

* ``a`` LUNA16-like demo: ``luna16.root: demo``, ``demo: {subsets: 1, scans_per_subset: 3,
  nodules_per_scan: [3, 4]}`` (3 full-size scans, 512², 110-150 slices, ~10 nodules), the
  ``luna16`` options of ``config/config.yaml``.  The demo generator (``make_demo_luna16``) runs
  inside the workflow; it is reported apart (a real LUNA16 run has no such step) and the shares
  are also given with its time taken out of the wall time.
* ``b`` LDCT, the options of ``config/ldct.yaml``, 160 real pairs as 40 small patients: the 16 real
  pairs of ``../shared/data/ldct`` (4 patients x 4 slices) copied 10 times under distinct patient
  folder names (``L096r00`` ...).
* ``c`` LDCT, the same options on the 16 real pairs as they are (the reference's own demo).
  The reference-style baseline (``benchmarks/reference_baseline_ldct.py``, run serially as
  ``benchmarks/ldct.py`` runs it: ``mpiexec -n 1``, on the pair tables the workflow wrote) is
  timed in the same repetition.
* ``d`` a realistic LDCT shape: 4 patients x 40 slices (``--slices``), each patient's 4 real slices
  repeated as a contiguous series: copy i gets ImagePositionPatient z = z0 - 3 mm * i,
  InstanceNumber / SliceLocation / SOPInstanceUID of its own (pydicom), input and target alike, so
  the pairing by position pairs them.

Every run: ``python -m snakemake --cores N --snakefile <repo>/Snakefile --directory <fresh dir>
--configfile <generated yaml>`` with ``extract.tasks: N`` (one MPI rank per core given; the
config's ``tasks: 2`` at ``--cores 1`` would run two ranks on one core).  Wall time = from before
the process starts to its exit.

Where the time goes, from Snakemake's own records of the run (``.snakemake/metadata``: each job's
start, when it was marked incomplete, and end = its output's mtime) and, for the extraction, the
rule's ``benchmark:`` TSV (``s`` column = duration, file mtime = end):

* **work** = union of the ``extract_patches`` intervals (the patch-producing step); ``work share`` =
  work / wall; ``overhead share`` = 1 - work share (target <= 25 %);
* **start-up** = process start -> first job start (parsing, DAG, discovery);
* **other rules** = every other rule's job time, summed per rule (they can overlap each other and
  the work at ``--cores 2``, so the sums are not a partition of the wall time);
* **tail** = last job end -> process exit.

Medians over repetitions; everything (every run, every job) in ``benchmarks/results/workflow.json``
(``workflow.quick.json`` with ``--quick``).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DATA = C.REPO.parent / "shared" / "data" / "ldct"
if not DATA.is_dir():  # a worktree next to the main checkout
    DATA = Path("/work/shared/data/ldct")
WORK_RULE = "extract_patches"
SCENARIOS = {
    "a": "LUNA16-like demo, 3 full-size scans",
    "b": "LDCT, 160 real pairs as 40 patients",
    "c": "LDCT, 16 real pairs (reference demo)",
    "d": "LDCT, 4 patients x {slices} slices",
}


# ---------------------------------------------------------------- data and configs
def load_yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())


def luna_config(cores: int) -> dict:
    cfg = load_yaml(C.REPO / "config" / "config.yaml")
    cfg["demo"] = {"subsets": 1, "scans_per_subset": 3, "nodules_per_scan": [3, 4]}
    cfg["luna16"]["root"] = "demo"
    cfg["extract"]["tasks"] = cores
    cfg["results"] = "results"
    return cfg


def ldct_config(root: Path, cores: int) -> dict:
    cfg = load_yaml(C.REPO / "config" / "ldct.yaml")
    cfg["ldct"]["root"] = str(root)
    cfg.setdefault("extract", {})["tasks"] = cores
    cfg["results"] = "results"
    return cfg


def patient_dirs(cfg_ldct: dict) -> list[Path]:
    return sorted(p for p in DATA.iterdir() if (p / cfg_ldct["input_dir"]).is_dir())


def replicate(dst: Path, copies: int, cfg_ldct: dict) -> Path:
    """Scenario b: every real patient folder copied ``copies`` times under distinct names."""
    for k in range(copies):
        for src in patient_dirs(cfg_ldct):
            for sub in (cfg_ldct["input_dir"], cfg_ldct["target_dir"]):
                shutil.copytree(src / sub, dst / f"{src.name}r{k:02d}" / sub)
    return dst


def long_series(dst: Path, slices: int, cfg_ldct: dict, step_mm: float = 3.0) -> Path:
    """Scenario d: each patient's real slices repeated into a contiguous series of ``slices`` slices.

    Copy i of the series is real slice ``i mod 4`` (sorted by position) with z = z0 - step * i,
    InstanceNumber i + 1, SliceLocation |z| and a new SOPInstanceUID; the input and target copies
    get the same position, so pairing by position pairs them."""
    import pydicom
    from pydicom.uid import generate_uid

    for src in patient_dirs(cfg_ldct):
        for sub in (cfg_ldct["input_dir"], cfg_ldct["target_dir"]):
            reals = [pydicom.dcmread(f) for f in sorted((src / sub).iterdir()) if f.is_file()]
            reals.sort(key=lambda d: -float(d.ImagePositionPatient[2]))
            z0 = float(reals[0].ImagePositionPatient[2])
            out = dst / src.name / sub
            out.mkdir(parents=True)
            for i in range(slices):
                d = reals[i % len(reals)].copy()
                z = z0 - step_mm * i
                pos = list(d.ImagePositionPatient)
                d.ImagePositionPatient = [pos[0], pos[1], z]
                d.InstanceNumber = i + 1
                if "SliceLocation" in d:
                    d.SliceLocation = abs(z)
                uid = generate_uid(entropy_srcs=[src.name, sub, str(i)])
                d.SOPInstanceUID = uid
                if hasattr(d, "file_meta") and "MediaStorageSOPInstanceUID" in d.file_meta:
                    d.file_meta.MediaStorageSOPInstanceUID = uid
                d.save_as(out / f"{i + 1:06d}.IMA")
    return dst


# ---------------------------------------------------------------- one run and its records
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
        j["end"] = max(j["end"], j["start"])  # `run:` rules (write_settings) record end <= start
        j["seconds"] = j["end"] - j["start"]
        rows.append(j)
    return sorted(rows, key=lambda r: r["start"])


def bench_intervals(run_dir: Path, t0: float) -> list[dict]:
    """The extraction's benchmark TSVs: (start, end) = (mtime - s, mtime), relative to t0."""
    out = []
    for f in sorted((run_dir / "results" / "benchmarks" / WORK_RULE).rglob("*.tsv")):
        lines = f.read_text().splitlines()
        head, vals = lines[0].split("\t"), lines[1].split("\t")
        s = float(vals[head.index("s")])
        end = f.stat().st_mtime - t0
        out.append(
            {
                "group": f.stem,
                "start": end - s,
                "end": end,
                "seconds": s,
                "max_rss_mb": float(vals[head.index("max_rss")]) if "max_rss" in head else None,
            }
        )
    return out


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


def snakemake_run(run_dir: Path, cfg: dict, cores: int) -> dict:
    import yaml

    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    cfgfile = run_dir / "bench-config.yaml"
    cfgfile.write_text(yaml.safe_dump(cfg, sort_keys=False))
    cmd = [
        C.PY,
        "-m",
        "snakemake",
        "--cores",
        cores,
        "--snakefile",
        C.REPO / "Snakefile",
        "--directory",
        run_dir,
        "--configfile",
        cfgfile,
    ]
    t0 = time.time()
    r = C.run(cmd, log=run_dir / "snakemake.out")
    wall = time.time() - t0
    jobs = job_records(run_dir, t0)
    bench = bench_intervals(run_dir, t0)
    work_jobs = [j for j in jobs if j["rule"] == WORK_RULE]
    work = union([(b["start"], b["end"]) for b in bench], 0.0, wall)
    work_md = union([(j["start"], j["end"]) for j in work_jobs], 0.0, wall)
    busy = union([(j["start"], j["end"]) for j in jobs], 0.0, wall)
    demo = sum(j["seconds"] for j in jobs if j["rule"] == "make_demo_luna16")
    per_rule: dict = {}
    for j in jobs:
        if j["rule"] != WORK_RULE:
            per_rule[j["rule"]] = per_rule.get(j["rule"], 0.0) + j["seconds"]
    first = min((j["start"] for j in jobs), default=wall)
    last = max((j["end"] for j in jobs), default=wall)
    return {
        "cores": cores,
        "wall_s": wall,
        "max_rss_snakemake": r["max_rss"],
        "jobs_n": len(jobs),
        "work_s": work,
        "work_s_metadata": work_md,
        "work_jobs": len(bench),
        "work_sum_s": sum(b["seconds"] for b in bench),
        "work_share": work / wall,
        "demo_s": demo,
        "work_share_excl_demo": work / (wall - demo) if demo else None,
        "startup_s": first,
        "tail_s": wall - last,
        "jobs_busy_s": busy,
        "idle_between_jobs_s": (last - first) - busy,
        "other_rules_s": per_rule,
        "other_rules_sum_s": sum(v for k, v in per_rule.items() if k != "make_demo_luna16"),
        "patches": count_patches(run_dir),
        "bench": bench,
        "jobs": jobs,
    }


def count_patches(run_dir: Path) -> int | None:
    try:
        import h5py

        import ctpatch  # noqa: F401  (registers the filters through hdf5plugin)

        n = 0
        for f in (run_dir / "results").glob("*/patches/*.h5"):
            with h5py.File(f, "r") as h:
                if "label_nodule" in h:  # LUNA16, any layout: one label per nodule and per negative patch
                    n += len(h["label_nodule"]) + len(h["label_non_nodule"])
                else:  # LDCT: one row per input/target pair
                    key = next((k for k in ("input", "inputs", "image", "images", "patches") if k in h), None)
                    n += len(h[key or next(k for k in h if isinstance(h[k], h5py.Dataset))])
        return n
    except Exception:  # noqa: BLE001  (only a label for the table)
        return None


def baseline(run_dir: Path, work: Path) -> dict:
    """The reference-style LDCT baseline, serial, on the pair tables the workflow wrote (as ldct.py runs it)."""
    tables = sorted((run_dir / "results" / "ldct" / "pairs").glob("*.tsv"))
    out, log = work / "baseline.h5", work / "baseline.log"
    r = C.run(
        ["mpiexec", "-n", 1, C.PY, C.BENCH / "reference_baseline_ldct.py", "--out", out, "--pairs", *tables], log=log
    )
    res = json.loads(log.read_text().strip().splitlines()[-1])
    res["wall_s"] = r["seconds"]
    out.unlink(missing_ok=True)
    return res


# ---------------------------------------------------------------- main
def main() -> None:
    ap = C.arg_parser(__doc__)
    ap._option_string_actions["--reps"].help = "repetitions (default 3, --quick 1)"
    ap._option_string_actions["--quick"].help = "1 repetition (same data and shapes)"
    ap.add_argument("--scenarios", default="a,b,c,d", help="comma list of a,b,c,d (default all)")
    ap.add_argument("--cores", default="1,2", help="comma list of --cores values (default 1,2)")
    ap.add_argument("--slices", type=int, default=40, help="slices per patient in scenario d (>= 40)")
    ap.add_argument("--copies", type=int, default=10, help="copies of the 16 real pairs, scenario b (10 = 160)")
    ap.add_argument("--no-baseline", action="store_true", help="skip the reference-style baseline in scenario c")
    ap.add_argument(
        "--runs",
        default=None,
        help="explicit run order, e.g. c1,c2,a1,b1 (scenario letter + cores; "
        "overrides --scenarios/--cores within each repetition)",
    )
    ap.add_argument("--report-from", default=None, help="only print the tables of a results JSON (or .partial.json)")
    ap.add_argument("--keep-runs", action="store_true", help="keep every run's folder (with --workdir)")
    args = ap.parse_args()
    reps = args.reps or (1 if args.quick else 3)
    if args.runs:
        order = [(r[0], int(r[1:])) for r in args.runs.split(",") if r]
    else:
        order = [(s, int(c)) for s in args.scenarios.split(",") if s for c in args.cores.split(",") if c]
    scen = list(dict.fromkeys(s for s, _ in order))
    cores_list = sorted({c for _, c in order})
    if args.report_from:
        report(args, json.loads(Path(args.report_from).read_text())["runs"], scen, cores_list)
        return
    partial = C.RESULTS / ("workflow.quick.partial.json" if args.quick else "workflow.partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)
    ldct_opts = load_yaml(C.REPO / "config" / "ldct.yaml")["ldct"]
    results = []
    with C.Workdir(args.workdir, prefix="ctpatch-wfbench-") as work:
        roots = {}
        if "b" in scen:
            roots["b"] = replicate(work / "data_b", args.copies, ldct_opts)
        if "c" in scen:
            roots["c"] = DATA
        if "d" in scen:
            roots["d"] = long_series(work / "data_d", args.slices, ldct_opts)
        print(f"scenarios {scen}, --cores {cores_list}, {reps} repetition(s); scratch {work}", flush=True)
        for rep in range(reps):
            for s, cores in order:
                waited = C.wait_quiet(max_wait=5 if args.quick else 30)
                cfg = luna_config(cores) if s == "a" else ldct_config(roots[s], cores)
                run_dir = work / "runs" / f"{s}-c{cores}-r{rep}"
                with C.Foreign() as fg:
                    r = snakemake_run(run_dir, cfg, cores)
                r.update(
                    {
                        "scenario": s,
                        "rep": rep,
                        "waited_s": waited,
                        "foreign_cpu_s": fg.seconds,
                        "loadavg_after": os.getloadavg()[0],
                    }
                )
                if s == "c" and cores == min(c for x, c in order if x == "c") and not args.no_baseline:
                    with C.Foreign() as fg2:
                        r["baseline"] = baseline(run_dir, work)
                    r["baseline"]["foreign_cpu_s"] = fg2.seconds
                results.append(r)
                print(
                    f"rep {rep + 1} {s} --cores {cores}: wall {r['wall_s']:.1f} s, work {r['work_s']:.1f} s "
                    f"({100 * r['work_share']:.0f} %), start-up {r['startup_s']:.1f} s, {r['jobs_n']} jobs, "
                    f"foreign CPU {fg.seconds:.0f} s"
                    + (f"; baseline {r['baseline']['wall_s']:.1f} s" if "baseline" in r else ""),
                    flush=True,
                )
                partial.write_text(json.dumps({"command": " ".join(sys.argv), "runs": results}, indent=1) + "\n")
                if not args.keep_runs:
                    shutil.rmtree(run_dir, ignore_errors=True)
    report(args, results, scen, cores_list)


def report(args, results, scen, cores_list) -> None:
    med = C.median
    rows, rule_rows = [], []
    rules = sorted({k for r in results for k in r["other_rules_s"]})
    for s in scen:
        for cores in cores_list:
            rs = [r for r in results if r["scenario"] == s and r["cores"] == cores]
            if not rs:
                continue
            row = {
                "run": SCENARIOS[s].format(slices=args.slices),
                "cores": cores,
                "reps": len(rs),
                "jobs": rs[0]["jobs_n"],
                "patches": rs[0]["patches"],
                "wall": med([r["wall_s"] for r in rs]),
                "work": med([r["work_s"] for r in rs]),
                "work_share": 100 * med([r["work_share"] for r in rs]),
                "overhead": 100 * med([1 - r["work_share"] for r in rs]),
                "startup": med([r["startup_s"] for r in rs]),
                "other": med([r["other_rules_sum_s"] for r in rs]),
                "idle": med([r["idle_between_jobs_s"] for r in rs]),
                "tail": med([r["tail_s"] for r in rs]),
                "foreign": med([r["foreign_cpu_s"] for r in rs]),
            }
            if s == "a":
                row["demo"] = med([r["demo_s"] for r in rs])
                row["share_x_demo"] = 100 * med([r["work_share_excl_demo"] for r in rs])
            rows.append(row)
            rule_rows.append(
                {"run": f"{s} --cores {cores}", **{k: med([r["other_rules_s"].get(k, 0.0) for r in rs]) for k in rules}}
            )
    t1 = C.table(
        rows,
        [
            ("run", "run", ""),
            ("cores", "--cores", "d"),
            ("reps", "reps", "d"),
            ("jobs", "jobs", "d"),
            ("patches", "patches", ""),
            ("wall", "wall s", ".1f"),
            ("work", "work s", ".1f"),
            ("work_share", "work %", ".0f"),
            ("overhead", "overhead %", ".0f"),
            ("startup", "start-up s", ".1f"),
            ("other", "other rules s (sum)", ".1f"),
            ("idle", "idle between jobs s", ".1f"),
            ("tail", "tail s", ".1f"),
            ("demo", "demo gen s", ".1f"),
            ("share_x_demo", "work % w/o demo gen", ".0f"),
            ("foreign", "foreign CPU s", ".0f"),
        ],
        "Whole snakemake runs (medians of the repetitions; work = union of extract_patches intervals; "
        "overhead target <= 25 %)",
    )
    t2 = C.table(
        rule_rows,
        [("run", "run", "")] + [(k, k, ".1f") for k in rules],
        "\nOther rules, seconds of job time summed per rule (medians)",
    )
    ratios = []
    for row in rows:
        ratios.append(
            {
                "ratio": f"overhead share, {row['run']}, --cores {row['cores']}",
                "value": row["overhead"] / 100,
                "target": "<= 0.25",
                "met": "yes" if row["overhead"] <= 25 else "NO",
            }
        )
    base = [r for r in results if "baseline" in r]
    if base:
        for cores in cores_list:
            ours = [r for r in results if r["scenario"] == "c" and r["cores"] == cores]
            if ours:
                v = med([o["wall_s"] for o in ours]) / med([b["baseline"]["wall_s"] for b in base])
                ratios.append(
                    {
                        "ratio": f"16-pair demo: ctpatch --cores {cores} wall / REFERENCE-STYLE baseline serial",
                        "value": v,
                        "target": "< 1",
                        "met": "yes" if v < 1 else "NO",
                    }
                )
    t3 = C.table(
        ratios,
        [("ratio", "ratio", ""), ("value", "value", ".2f"), ("target", "target", ""), ("met", "met", "")],
        "\nRatios",
    )
    if base:
        C.table(
            [
                {
                    "rep": b["rep"] + 1,
                    "wall": b["baseline"]["wall_s"],
                    "pairs": b["baseline"]["pairs"],
                    "patches": b["baseline"]["patches"],
                }
                for b in base
            ],
            [
                ("rep", "rep", "d"),
                ("wall", "baseline serial wall s", ".1f"),
                ("pairs", "pairs", "d"),
                ("patches", "patches", "d"),
            ],
            "\nREFERENCE-STYLE baseline (mpiexec -n 1), 16 pairs",
        )
    C.write_results(
        "workflow",
        args,
        {
            "scenarios": {s: SCENARIOS[s].format(slices=args.slices) for s in scen},
            "summary": rows,
            "other_rules": rule_rows,
            "ratios": ratios,
            "tables": "\n\n".join([t1, t2, t3]),
            "runs": results,
        },
    )


if __name__ == "__main__":
    main()
