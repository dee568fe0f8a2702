"""A LUNA16-sized run through the two-node test cluster against the same run locally (issue 23).

888 generated scans in 10 subsets (89 in subset0-7, 88 in subset8-9, as LUNA16), small enough that
both runs take tens of minutes on a 2-core machine: 64² x 36-44 voxels and one nodule per scan
(``--size-xy``/``--slices``), and patches of 32³ with one shift per side (PATCH below; the default
68³ with four shifts would be ~100 patches of 1.2 MB per nodule, ~60 GB for 888 scans). The whole
workflow runs twice on the same data and config:

* through ``profiles/slurm`` on ``scripts/slurm-twonode.sh``'s cluster (extract.nodes: 2, ``--cores
  1`` = one node's CPUs per group job), with ``scripts/slurm-status`` first on PATH;
* locally with ``--cores 2`` (the cluster's nodes have one CPU each: the same two cores).

Then every subset's verification report must say ok, and every patch file (and table) of the SLURM
run must equal the local run's byte for byte. Printed and written to
``benchmarks/results/slurm_luna16.json``: wall time of each run and their ratio (target <= 1.5), the
sbatch submissions, the jobs' summed time in the queue (submit -> start) and running (start -> end),
and the extraction steps' peak memory per rank (sacct MaxRSS: the largest rank; AveRSS: the mean).

    sudo scripts/slurm-twonode.sh start && eval "$(scripts/slurm-twonode.sh env)"
    PYTHONPATH=$PWD/workflow python benchmarks/slurm_luna16.py          # --scans 40 --subsets 2: smoke run

With ``--keep DIR`` the data and both runs stay in DIR, and a second call with the same DIR skips
what is done (``--only local`` runs the local half, which needs no cluster). Each run's load
average (1 min) before and after is recorded: on a machine shared with other work the ratio says
little unless both were alike.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import filecmp
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
# luna16.patch of both runs: 32³ patches, 1 shift of 8 voxels per side and direction (7 per nodule)
PATCH = {"size": 32, "stride": 8, "shifts_per_side": 1, "label_pool": 4}
PROFILE = REPO / "profiles" / "slurm"
STATUS_WRAPPERS = REPO / "scripts" / "slurm-status"


def make_dataset(out: Path, scans: int, subsets: int, size_xy: int, slices: list[int], seed: int) -> int:
    """LUNA16 layout under ``out``: ``scans`` spread over ``subsets`` as LUNA16 does (the last ones one
    short); returns the number of scans written."""
    from ctpatch.luna16.demo import write_dataset

    per = -(-scans // subsets)
    demo = {
        "subsets": subsets,
        "scans_per_subset": per,
        "size_xy": size_xy,
        "slices": slices,
        "nodules_per_scan": [1, 1],
        "candidates_per_scan": 5,
    }
    plans = write_dataset(out, demo, seed)
    # drop one scan from each of the last subsets until `scans` remain (LUNA16: subset8/9 hold 88)
    drop = []
    for k in range(len(plans) - scans):
        subset = f"subset{subsets - 1 - k}"
        drop.append([p for p in plans if p.subset == subset][-1].series_uid)
    for uid in drop:
        for f in out.glob(f"subset*/{uid}.*"):
            f.unlink()
    for table in ("annotations.csv", "candidates.csv"):
        path = out / "CSVFILES" / table
        rows = list(csv.reader(path.open()))
        path.write_text("".join(",".join(r) + "\n" for r in rows if r[0] not in drop))
    return len(plans) - len(drop)


def snakemake(workdir: Path, *args: str, env=None) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir)]
    t0 = time.monotonic()
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, env=env)
    seconds = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd + list(args))} failed:\n{log[-5000:]}")
    return seconds, log


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def accounting(jobids: list[str]) -> dict:
    """Queue and run time of the jobs, and the extraction steps' peak memory per rank (sacct)."""
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-j", ",".join(jobids), "--format=JobID,JobName,Submit,Start,End,State"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    queued = running = 0.0
    states = {}
    for line in out.splitlines():
        jobid, _, submit, start, end, state = line.split("|")
        queued += _seconds(start) - _seconds(submit)
        running += _seconds(end) - _seconds(start)
        states[jobid] = state
    steps = subprocess.run(
        ["sacct", "-n", "-P", "-j", ",".join(jobids), "--format=JobID,NTasks,MaxRSS,AveRSS,NNodes", "--units=M"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ranks = []
    for line in steps.splitlines():
        jobid, ntasks, maxrss, averss, nnodes = line.split("|")
        if ntasks and int(ntasks) >= 2 and maxrss:  # the srun step that ran the MPI ranks
            ranks.append(
                {"step": jobid, "tasks": int(ntasks), "nodes": int(nnodes), "max_rss_mb": maxrss, "ave_rss_mb": averss}
            )
    return {"queued_s": queued, "running_s": running, "states": states, "extraction_steps": ranks}


def compare(slurm: Path, local: Path) -> list[str]:
    """Files of results/ that differ or exist on one side only (logs and benchmarks aside)."""
    bad = []
    names = {
        p.relative_to(root).as_posix()
        for root in (slurm, local)
        for p in (root / "results").rglob("*")
        if p.is_file() and "benchmarks" not in p.parts
    }
    for name in sorted(names):
        a, b = slurm / name, local / name
        if not (a.is_file() and b.is_file() and filecmp.cmp(a, b, shallow=False)):
            bad.append(name)
    return bad


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scans", type=int, default=888)
    ap.add_argument("--subsets", type=int, default=10)
    ap.add_argument("--size-xy", type=int, default=64, help="in-plane voxels of each scan (LUNA16: 512)")
    ap.add_argument("--slices", type=int, nargs=2, default=[36, 44], help="range of slice counts")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", help="folder to keep the data and both runs in (default: a temp folder)")
    ap.add_argument("--only", choices=["local"], help="run only the local half (no cluster needed)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "slurm_luna16.json"))
    args = ap.parse_args(argv)
    if args.only is None and not os.environ.get("SLURM_CONF", "").startswith("/run/ctpatch-slurm2/"):
        raise SystemExit('start the two-node cluster and eval "$(scripts/slurm-twonode.sh env)" first')
    env = {**os.environ, "PATH": os.pathsep.join([str(STATUS_WRAPPERS), os.environ["PATH"]])}
    with contextlib.ExitStack() as stack:
        if args.keep:
            root = Path(args.keep)
            root.mkdir(parents=True, exist_ok=True)
        else:
            root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="slurm_luna16_")))
        done_file = root / "done.json"
        done = json.loads(done_file.read_text()) if done_file.exists() else {}
        if "scans" not in done:
            t0 = time.monotonic()
            done["scans"] = make_dataset(
                root / "LUNA16", args.scans, args.subsets, args.size_xy, args.slices, args.seed
            )
            print(f"{done['scans']} scans in {args.subsets} subsets written in {time.monotonic() - t0:.0f} s")
            config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
            config["luna16"]["root"] = str(root / "LUNA16")
            config["luna16"]["patch"] = PATCH
            config["extract"]["nodes"] = 2
            for run in ("slurm", "local"):
                (root / run / "config").mkdir(parents=True, exist_ok=True)
                (root / run / "config" / "config.yaml").write_text(yaml.safe_dump(config))
            done_file.write_text(json.dumps(done))
        n = done["scans"]
        if "local" not in done:
            load = os.getloadavg()[0]
            t_local, _ = snakemake(root / "local", "--cores", "2", env=env)
            done["local"] = {"seconds": t_local, "load_before": load, "load_after": os.getloadavg()[0]}
            done_file.write_text(json.dumps(done))
        t_local = done["local"]["seconds"]
        print(f"local --cores 2: {t_local:.0f} s ({done['local']})", flush=True)
        if args.only == "local":
            return
        if "slurm" not in done:
            load = os.getloadavg()[0]
            t_slurm, log = snakemake(
                root / "slurm", "--profile", str(PROFILE), "--cores", "1", "--slurm-keep-successful-logs", env=env
            )
            jobids = sorted(set(re.findall(r"submitted with SLURM jobid (\d+)", log)), key=int)
            done["slurm"] = {
                "seconds": t_slurm,
                "load_before": load,
                "load_after": os.getloadavg()[0],
                "jobids": jobids,
            }
            done_file.write_text(json.dumps(done))
        t_slurm, jobids = done["slurm"]["seconds"], done["slurm"]["jobids"]
        print(f"two-node SLURM: {t_slurm:.0f} s, {len(jobids)} sbatch submissions ({done['slurm']})", flush=True)
        acct = accounting(jobids)
        reports = sorted((root / "slurm" / "results" / "luna16" / "report").glob("subset*.verify.json"))
        not_ok = [p.name for p in reports if not json.loads(p.read_text()).get("ok")]
        differ = compare(root / "slurm", root / "local")
        result = {
            "patch": PATCH,
            "scans": n,
            "subsets": args.subsets,
            "size_xy": args.size_xy,
            "slices": args.slices,
            "local_cores2_s": t_local,
            "slurm_s": t_slurm,
            "load_local": [done["local"]["load_before"], done["local"]["load_after"]],
            "load_slurm": [done["slurm"]["load_before"], done["slurm"]["load_after"]],
            "ratio": t_slurm / t_local,
            "sbatch": len(jobids),
            **acct,
            "verified_subsets": len(reports),
            "verify_not_ok": not_ok,
            "files_differing_from_local": differ,
        }
    print(f"\nwall time: SLURM {t_slurm:.0f} s, local {t_local:.0f} s, ratio {t_slurm / t_local:.2f} (target <= 1.5)")
    print(
        f"sbatch submissions: {len(jobids)}; jobs' time queued {acct['queued_s']:.0f} s, running {acct['running_s']:.0f} s"
    )
    for step in acct["extraction_steps"]:
        print(
            f"extraction step {step['step']}: {step['tasks']} ranks on {step['nodes']} nodes, peak RSS per rank "
            f"max {step['max_rss_mb']}, mean {step['ave_rss_mb']}"
        )
    print(
        f"verified subsets: {len(reports)} (not ok: {not_ok or 'none'}); files differing from local: {differ or 'none'}"
    )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    if not_ok or differ or len(reports) != args.subsets:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
