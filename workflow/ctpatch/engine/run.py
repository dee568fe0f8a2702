"""One extraction: ranks cut and compress blocks of patches, rank 0 writes the final files once.

The work is a list of **blocks** in canonical order (:mod:`ctpatch.engine.blocks`).  Block ``b`` is
computed by rank ``owners(...)[b]``: it cuts the block's patches through the job (the patch-sink
protocol, :class:`ctpatch.store.sink.PatchSink`), compresses them into chunk bytes
(:class:`ctpatch.store.writer.BlockSink`) and sends them to rank 0, which writes the blocks in
order, each chunk at its final (shuffled) row (:class:`ctpatch.store.writer.PatchFileWriter`).  A rank
computes at most :data:`~ctpatch.engine.blocks.AHEAD` blocks ahead of rank 0, so memory stays bounded;
every random draw is keyed by the unit, never by the rank, and rank 0 makes the same HDF5 calls in
the same order for any N, so the files are byte-identical for any rank count.  No shard, no merge:
the patches are written once.

When the final rows depend on counts that only the data give (LDCT with ``output.shuffle`` or
``output.nsplit > 1``: the air threshold decides how many patches a pair keeps), a counting pass
runs first (``Job.count``, the ranks sharing the units; nothing is cut or compressed).

A job is any object with ``mode``, ``parts``, ``splittable``, ``shuffle``, ``seed``, ``buffer`` and the
methods ``units()``, ``count(unit)``, ``totals(units)``, ``specs()`` and ``run(unit, sink, start, stop)``.
"""

from __future__ import annotations

import time
from pathlib import Path

from ctpatch.engine.blocks import AHEAD, BLOCK_PATCHES, Unit, owners, spans


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
    from ctpatch.store.writer import BlockSink, ChunkEncoder, PatchFileWriter

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
