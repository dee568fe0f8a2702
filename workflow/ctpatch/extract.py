"""The MPI patch extraction: ranks split the work units, each streams its own HDF5 shard.

Run as ``mpiexec -n N python -m ctpatch.extract --ranks N --mode luna16 ...``.  The program
first checks that the MPI world has the size it was asked for: a launcher that starts N separate
one-rank worlds (``srun -n N`` without ``--mpi=pmi2``) would otherwise write N copies of the
same shard.  Units (scans or slice pairs) are assigned by their cost, largest first, to the
least-loaded rank; since every random draw is keyed by the unit, never by the rank, and the merge
restores the canonical order, the result does not depend on the rank count.  No rank receives
patch data from another: the only message is the small per-shard summary gathered for the
manifest, which rank 0 writes last (its presence means every shard is complete).
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import time
import traceback
from pathlib import Path

from ctpatch.config import read_settings
from ctpatch.store import write_json

MODES = ("luna16", "ldct")


def assign(costs: list[float], ranks: int) -> list[list[int]]:
    """Longest-processing-time assignment of unit indices to ranks (deterministic).

    >>> assign([5, 1, 4, 2], 2)
    [[0, 1], [2, 3]]
    """
    if ranks < 1:
        raise ValueError(f"Expected at least one rank, got {ranks!r}")
    heap = [(0.0, r) for r in range(ranks)]
    out: list[list[int]] = [[] for _ in range(ranks)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, r = heapq.heappop(heap)
        out[r].append(i)
        heapq.heappush(heap, (load + float(costs[i]), r))
    return out


def mode_module(mode: str):
    if mode == "luna16":
        from ctpatch import extract_luna as mod
    elif mode == "ldct":
        from ctpatch import extract_ldct as mod
    else:
        raise ValueError(f"Expected mode in {MODES}, got {mode!r}")
    return mod


def comm_host() -> str:
    """The name of the host this rank runs on, as MPI reports it (``MPI.Get_processor_name()``)."""
    from mpi4py import MPI

    return MPI.Get_processor_name()


def run(args, comm) -> None:
    rank, size = comm.Get_rank(), comm.Get_size()
    if size != args.ranks:
        raise RuntimeError(
            f"expected an MPI world of {args.ranks} ranks, got {size}: the launcher did not start one "
            f"MPI world (with SLURM use 'srun --mpi=pmi2', not plain 'srun')"
        )
    # the host shows where the launcher put each rank (two hosts when a job spans two nodes)
    print(f"rank {rank}: MPI world size {size} on host {comm_host()}", flush=True)
    if args.plan and rank == 0:  # before any work: the shards and the merged file must fit
        from ctpatch.diskspace import check_free, extraction_need

        group = Path(args.out_dir).name
        check_free(Path(args.out_dir).parent, extraction_need(args.plan, group),
                   f"{group}'s shards and merged file (2x the plan's estimate)")
    comm.barrier()
    mod = mode_module(args.mode)
    job = mod.Job(args)
    units = job.units()
    mine = assign([u.cost for u in units], size)[rank]
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shard = out_dir / f"rank{rank:04d}.h5"
    t0 = time.perf_counter()
    with job.writer(shard) as writer:
        for i in mine:
            t = time.perf_counter()
            counts = job.run(units[i], writer)
            print(f"rank {rank}: {units[i].key}: {counts} in {time.perf_counter() - t:.2f} s", flush=True)
    summary = {"shard": shard.name, "rank": rank, "units": [units[i].key for i in mine],
               "seconds": time.perf_counter() - t0}
    summaries = comm.gather(summary, root=0)
    if rank == 0:
        write_json(out_dir / "manifest.json", {"mode": args.mode, "ranks": size, "shards": summaries,
                                               "units": [u.key for u in units]})
        print(f"extraction done: {len(units)} units on {size} ranks", flush=True)


def parse_args(argv=None):
    ap = argparse.ArgumentParser(prog="python -m ctpatch.extract", description=__doc__.split("\n\n")[0])
    ap.add_argument("--mode", choices=MODES, required=True)
    ap.add_argument("--ranks", type=int, required=True, help="the MPI world size this run must have")
    ap.add_argument("--plan", default=None,
                    help="plan.json: check free space for the group (the out-dir's name) before any work")
    ap.add_argument("--out-dir", required=True, help="folder for rankNNNN.h5 shards and manifest.json")
    ap.add_argument("--settings-file", required=True, help="settings of scope 'patches' (ctpatch.config)")
    ap.add_argument("--inputs", required=True, help="JSON object of input paths of the mode")
    args = ap.parse_args(argv)
    if args.ranks < 1:
        ap.error(f"Expected --ranks >= 1, got {args.ranks}")
    return args


def main(argv=None) -> int:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        args = parse_args(argv)
        args.settings = read_settings(args.settings_file, scope="patches")
        args.inputs = json.loads(args.inputs)
        run(args, comm)
    except SystemExit:
        raise
    except BaseException as exc:  # one rank failing must stop every rank, never hang a barrier
        msg = str(exc) if isinstance(exc, (ValueError, RuntimeError, OSError)) else traceback.format_exc()
        print(f"rank {comm.Get_rank()}: error: {msg}", file=sys.stderr, flush=True)
        comm.Abort(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
