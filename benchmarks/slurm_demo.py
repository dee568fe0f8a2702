"""The LUNA16 demo through SLURM: sbatch calls and wall time per profile, against a local run.

Needs a running cluster whose SLURM_CONF is set, e.g.

    sudo scripts/slurm-local.sh start && eval "$(scripts/slurm-local.sh env)"
    python benchmarks/slurm_demo.py --profile profiles/slurm --profile /tmp/old-profile

Each repetition runs the repository's default config (config/config.yaml: the demo) in a fresh
temp folder: once per profile and once locally (``--cores 2``). Prints per profile the median
wall time, the sbatch calls (distinct SLURM job ids Snakemake reports) and the ratio to the local
run of the same repetition; writes everything to benchmarks/results/slurm_demo.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_once(workdir: Path, *args: str) -> tuple[float, int]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(REPO / "Snakefile"),
        "--configfile",
        str(REPO / "config" / "config.yaml"),
        "--directory",
        str(workdir),
        *args,
    ]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{log[-4000:]}")
    return seconds, len(set(re.findall(r"submitted with SLURM jobid (\d+)", log)))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", action="append", required=True, help="a profile folder (repeatable)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--cores",
        type=int,
        default=2,
        help="--cores for the profile runs: caps one group job; at most the CPUs of a node (2 on "
        "scripts/slurm-local.sh's; a larger group job would stay PENDING)",
    )
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "slurm_demo.json"))
    args = ap.parse_args(argv)
    if not os.environ.get("SLURM_CONF") and not Path("/etc/slurm/slurm.conf").exists():
        raise SystemExit("no cluster: start one and set SLURM_CONF (see the docstring)")
    rows = {p: [] for p in args.profile}
    local = []
    for rep in range(args.repeats):
        with tempfile.TemporaryDirectory(prefix="slurm_demo_") as tmp:
            t_local, _ = run_once(Path(tmp) / "local", "--cores", "2")
            local.append(t_local)
            for profile in args.profile:
                seconds, sbatch = run_once(
                    Path(tmp) / Path(profile).name,
                    "--profile",
                    str(Path(profile).resolve()),
                    "--cores",
                    str(args.cores),
                )
                rows[profile].append({"seconds": seconds, "sbatch": sbatch, "ratio_to_local": seconds / t_local})
                print(
                    f"rep {rep}: {profile}: {seconds:.1f} s, {sbatch} sbatch calls (local {t_local:.1f} s)", flush=True
                )
    print(f"\n{'profile':40} {'median s':>9} {'sbatch':>7} {'x local':>8}")
    print(f"{'local --cores 2':40} {statistics.median(local):9.1f} {0:7d} {1.0:8.2f}")
    for profile, r in rows.items():
        print(
            f"{profile:40} {statistics.median(x['seconds'] for x in r):9.1f} "
            f"{int(statistics.median(x['sbatch'] for x in r)):7d} "
            f"{statistics.median(x['ratio_to_local'] for x in r):8.2f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"local_seconds": local, "profiles": rows}, indent=2))


if __name__ == "__main__":
    main()
