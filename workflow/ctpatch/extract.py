"""The MPI patch extraction: ranks cut and compress patches, rank 0 writes the final files once.

Run as ``mpiexec -n N python -m ctpatch.extract --ranks N --mode luna16 --out X.h5 ...``.  The
program first checks that the MPI world has the size it was asked for: a launcher that starts N
separate one-rank worlds (``srun -n N`` without ``--mpi=pmi2``) would otherwise write N copies.

The work is a list of **blocks** in canonical order: the units (scans or slice pairs, in their
order) cut into runs of at most :data:`BLOCK_PATCHES` patches (a LUNA16 scan gives many blocks,
an LDCT pair one).  Block ``b`` is computed by rank ``owners(...)[b]`` (round-robin, rank 0 taking
a little less, as it also writes; :func:`owners`): it cuts the block's patches through the job
(:class:`ctpatch.store.PatchSink` protocol), compresses them into chunk bytes
(:class:`ctpatch.patchfile.BlockSink`) and sends them to rank 0, which writes the blocks in order,
each chunk at its final (shuffled) row (:class:`ctpatch.patchfile.PatchFileWriter`).  A rank
computes at most :data:`AHEAD` blocks ahead of rank 0, so memory stays bounded; every random
draw is keyed by the unit, never by the rank, and rank 0 makes the same HDF5 calls in the same
order for any N, so the files are byte-identical for any rank count.  No shard, no merge: the
patches are written once.

When the final rows depend on counts that only the data give (LDCT with ``output.shuffle`` or
``output.nsplit > 1``: the air threshold decides how many patches a pair keeps), a counting pass
runs first (:meth:`Job.count`, the ranks sharing the units; it reads the pair and applies the air
threshold, nothing is cut or compressed).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ctpatch.config import read_settings

MODES = ("luna16", "ldct")

#: patches per block: the unit of work a rank computes and sends (about 20 MB of compressed LUNA16 patches)
BLOCK_PATCHES = 32
#: blocks a rank may have computed and not yet handed to the writer
AHEAD = 2


#: rank 0's placing of the chunks it receives, relative to computing them (LUNA16: 3.0 of 40 s per scan;
#: LDCT: 0.2 of 2.7 s per patient; ``benchmarks/luna.py`` per-stage table): rank 0 computes fewer blocks
WRITE_SHARE = 0.075


def owners(n: int, size: int, write_share: float = WRITE_SHARE) -> list[int]:
    """The rank computing each of ``n`` blocks: a smooth weighted round-robin (deterministic) in which rank 0,
    which also writes every block, takes ``(1 + w) / size - w`` of them and the other ranks share the rest.

    >>> owners(8, 2)
    [1, 0, 1, 0, 1, 0, 1, 0]
    >>> [owners(1000, 2).count(r) for r in range(2)]
    [462, 538]
    >>> [owners(1000, 4).count(r) for r in range(4)]
    [194, 269, 269, 268]
    >>> owners(3, 1)
    [0, 0, 0]
    """
    if size == 1:
        return [0] * n
    lead = max(0.0, (1 + write_share) / size - write_share)
    weights = [lead] + [(1 - lead) / (size - 1)] * (size - 1)
    credit, out = [0.0] * size, []
    for _ in range(n):
        credit = [c + w for c, w in zip(credit, weights)]
        r = max(range(size), key=lambda k: (credit[k], -k))
        credit[r] -= 1.0
        out.append(r)
    return out


@dataclass(frozen=True)
class Unit:
    """One unit of extraction work: a LUNA16 scan or an LDCT slice pair.

    ``key`` names it (series uid; ``patient/input file``) and keys its random draws; ``index`` is
    its place in the canonical order (``scan_index``, ``pair_index``); ``cost`` its relative cost;
    ``patches`` the number of output items it gives when known before cutting (``None``: known
    after :meth:`count`), an item being one patch row with its provenance row.
    """

    key: str
    index: int
    cost: float = 1.0
    patches: int | None = None


@dataclass(frozen=True)
class Span:
    """Items ``[start, stop)`` of unit ``unit`` (``stop`` ``None``: to the end)."""

    unit: int
    start: int = 0
    stop: int | None = None


def spans(units: list[Unit], per_block: int = BLOCK_PATCHES, splittable: bool = True) -> list[Span]:
    """The blocks of work in canonical order: each unit cut into runs of ``per_block`` items.

    >>> [(s.unit, s.start, s.stop) for s in spans([Unit("a", 0, patches=5), Unit("b", 1, patches=0)], 2)]
    [(0, 0, 2), (0, 2, 4), (0, 4, 5), (1, 0, 0)]
    >>> [(s.unit, s.start, s.stop) for s in spans([Unit("a", 0)], 2, splittable=False)]
    [(0, 0, None)]
    """
    out = []
    for i, u in enumerate(units):
        if not splittable or u.patches is None:
            out.append(Span(i))
            continue
        out += [Span(i, a, min(a + per_block, u.patches)) for a in range(0, u.patches, per_block)] or [Span(i, 0, 0)]
    return out


def assign(costs: list[float], ranks: int) -> list[list[int]]:
    """Longest-processing-time assignment of unit indices to ranks (deterministic); ``plan`` uses it to
    estimate a run's makespan (the extraction itself deals blocks round-robin (:func:`owners`), which balances at
    least as well: blocks are small and of equal size).

    >>> assign([5, 1, 4, 2], 2)
    [[0, 1], [2, 3]]
    """
    import heapq

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


class _SelfComm:
    """The one-rank stand-in for an MPI communicator (extraction in this process, no MPI)."""

    def Get_rank(self):  # noqa: N802 (mpi4py's names)
        return 0

    def Get_size(self):  # noqa: N802
        return 1

    def allgather(self, value):
        return [value]

    def Barrier(self):  # noqa: N802
        pass


def extract(job, outputs, attrs: dict | None = None, comm=None, log=None) -> dict | None:
    """Run ``job`` on every rank of ``comm`` (default: this process alone) into ``outputs``.

    Returns the rows per provenance table on rank 0 (``None`` elsewhere).  Every rank must call it.
    """
    from ctpatch.patchfile import BlockSink, ChunkEncoder, PatchFileWriter

    comm = comm or _SelfComm()
    rank, size = comm.Get_rank(), comm.Get_size()
    log = log or (lambda msg: None)
    units = job.units()
    outputs = [Path(o) for o in outputs]
    if len(outputs) != job.parts:
        raise ValueError(f"Expected {job.parts} output file(s) (output.nsplit), got {len(outputs)}")
    need_totals = job.shuffle or job.parts > 1
    if need_totals and any(u.patches is None for u in units):  # counting pass, the ranks sharing the units
        t = time.perf_counter()
        mine = {i: job.count(units[i]) for i in range(rank, len(units), size)}
        counted = {k: v for part in comm.allgather(mine) for k, v in part.items()}
        units = [Unit(u.key, u.index, u.cost, counted[i]) for i, u in enumerate(units)]
        log(
            f"rank {rank}: counted {sum(mine.values())} patches of {len(mine)} units in {time.perf_counter() - t:.2f} s"
        )
    specs = job.specs()
    work = spans(units, BLOCK_PATCHES, job.splittable)
    encoder = ChunkEncoder(specs, job.buffer)
    sink = BlockSink(encoder, job.buffer)
    writer = None
    if rank == 0:
        totals = job.totals(units) if all(u.patches is not None for u in units) else None
        writer = PatchFileWriter(outputs, specs, job.mode, job.seed, job.shuffle, totals, attrs, encoder)
    pending = []
    counts = None
    try:
        t0 = time.perf_counter()
        owner_of = owners(len(work), size)
        for b, span in enumerate(work):
            owner = owner_of[b]
            block = None
            if owner == rank:
                job.run(units[span.unit], sink, span.start, span.stop)
                block = sink.take(b)
            if rank == 0:
                if owner != 0:
                    block = comm.recv(source=owner, tag=b % 32768)
                writer.write(block)
            elif owner == rank:
                pending.append(comm.isend(block, dest=0, tag=b % 32768))
                while len(pending) > AHEAD:
                    pending.pop(0).wait()
        for req in pending:
            req.wait()
        log(f"rank {rank}: {owner_of.count(rank)} of {len(work)} blocks in {time.perf_counter() - t0:.2f} s")
        if writer is not None:
            counts = writer.close()
            writer = None
    finally:
        if writer is not None:
            writer.abort()
        encoder.close()
    comm.Barrier()
    return counts


def run(args, comm) -> None:
    rank, size = comm.Get_rank(), comm.Get_size()
    if size != args.ranks:
        raise RuntimeError(
            f"expected an MPI world of {args.ranks} ranks, got {size}: the launcher did not start one "
            f"MPI world (with SLURM use 'srun --mpi=pmi2', not plain 'srun')"
        )
    # the host shows where the launcher put each rank (two hosts when a job spans two nodes)
    print(f"rank {rank}: MPI world size {size} on host {comm_host()}", flush=True)
    groups = args.groups
    if args.plan and rank == 0:  # before any work: the patch files (one copy, no shards) must fit
        from ctpatch.diskspace import check_free, extraction_need

        names = [g.name for g in groups]
        check_free(
            Path(groups[0].out[0]).parent,
            sum(extraction_need(args.plan, name) for name in names),
            f"{names[0]}'s patch file(s) (the plan's estimate)"
            if len(names) == 1
            else f"the patch files of {len(names)} groups (the plan's estimate)",
        )
    comm.barrier()
    settings = read_settings(args.settings_file, scope="patches")
    module = mode_module(args.mode)
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    for g in groups:  # one MPI world for every group of the job: one start-up, not one per patient
        job = module.Job(settings, g.inputs)
        attrs = {
            "settings": json.dumps(settings, sort_keys=True),
            "mode": args.mode,
            "seed": job.seed,
            "group": g.group,
        }
        counts = extract(job, g.out, attrs, comm, log=log)
        if rank == 0:
            print(f"extraction done: {counts} rows in {', '.join(g.out)} on {size} ranks", flush=True)


@dataclass(frozen=True)
class Group:
    """One group's extraction in a job: its name (the files' 'group' attribute), output file(s) and inputs."""

    group: str
    out: list
    inputs: dict

    @property
    def name(self) -> str:
        return self.group or Path(self.out[0]).stem


def parse_args(argv=None):
    from ctpatch.cli import for_group, split_groups

    argv, groups = split_groups(sys.argv[1:] if argv is None else list(argv))
    ap = argparse.ArgumentParser(
        prog="python -m ctpatch.extract",
        description=__doc__.split("\n\n")[0],
        epilog="Several groups in one MPI world, one after the other: --groups G1 G2 ..., with {group} in "
        "--out, --group and --inputs standing for each group's name.",
    )
    ap.add_argument("--mode", choices=MODES, required=True)
    ap.add_argument("--ranks", type=int, required=True, help="the MPI world size this run must have")
    ap.add_argument("--plan", default=None, help="plan.json: check free space for the group(s) before any work")
    ap.add_argument("--out", nargs="+", required=True, help="the patch file(s): one, or output.nsplit parts")
    ap.add_argument("--group", default="", help="the subset or patient, recorded as the files' 'group' attribute")
    ap.add_argument(
        "--settings-file", required=True, help="settings of scope 'patches' (ctpatch.config), recorded in the files"
    )
    ap.add_argument("--inputs", required=True, help="JSON object of input paths of the mode")
    args = ap.parse_args(argv)
    if args.ranks < 1:
        ap.error(f"Expected --ranks >= 1, got {args.ranks}")
    if groups == []:
        ap.error("--groups: Expected at least one group name, got none")
    entries = [args] if groups is None else [ap.parse_args(for_group(argv, g)) for g in groups]
    args.groups = [Group(e.group, list(e.out), json.loads(e.inputs)) for e in entries]
    return args


def main(argv=None) -> int:
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        args = parse_args(argv)
        run(args, comm)
    except SystemExit:
        raise
    except BaseException as exc:  # one rank failing must stop every rank, never hang a barrier
        msg = str(exc) if isinstance(exc, (ValueError, RuntimeError, OSError)) else traceback.format_exc()
        if isinstance(exc, OSError) and exc.strerror:  # "[Errno 28] ..." -> the message alone
            msg = exc.strerror
        print(f"rank {comm.Get_rank()}: error: {msg}", file=sys.stderr, flush=True)
        comm.Abort(1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
