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
from ctpatch.store.diskspace import check_free


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


def extract(job, outputs, attrs: dict | None = None, comm=None, log=None, *, buffer: int) -> dict | None:
    """Run ``job`` on every rank of ``comm`` (default: this process alone) into ``outputs``.

    ``buffer``: patches per dataset a rank compresses at a time (``extract.buffer_patches``; it bounds
    memory and does not change a byte).  Rank 0 checks the free disk space once the first block is in
    (its compressed bytes per item times the items to come, :func:`disk_need`), and logs its progress
    (:class:`Progress`).  Returns the rows per provenance table on rank 0 (``None`` elsewhere).  Every
    rank must call it.
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
    encoder = ChunkEncoder(specs, buffer)
    sink = BlockSink(encoder, buffer)
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
                if b == 0:  # before anything is written: the file must fit
                    need = disk_need(block, span_items(span, units), total_items(units), len(work))
                    check_free(outputs[0].parent, need, f"{outputs[0].name} (estimated from its first block)")
                    progress = Progress(outputs[0].stem, total_items(units), len(work), log)
                writer.write(block)
                progress.done(span_items(span, units))
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


def extraction_attrs(job, group: str = "") -> dict:
    """The file attributes of one extraction: what made it (:func:`ctpatch.store.identity.record` of the
    job's settings, complete, and of its inputs), the mode, the seed and the group (subset or patient)."""
    from dataclasses import asdict

    from ctpatch.store.identity import record

    return {**record(asdict(job.settings), job.inputs_identity()), "mode": job.mode, "seed": job.seed, "group": group}


def span_items(span, units) -> int | None:
    """Items (patches with their rows) of a block's span, when known before it is cut."""
    if span.stop is not None:
        return span.stop - span.start
    return units[span.unit].patches


def total_items(units) -> int | None:
    """Items of every unit, when every count is known (LUNA16; LDCT after its counting pass)."""
    return sum(u.patches for u in units) if all(u.patches is not None for u in units) else None


def disk_need(first, first_items: int | None, total: int | None, blocks: int, margin: float = 1.1) -> int:
    """Bytes the output files need, estimated from the first block: its stored bytes per item times every
    item when the counts are known, else its bytes times the blocks (an LDCT block is one slice pair);
    ``margin`` and 1 MiB for the metadata."""
    stored = sum(len(data) for chunks in first.chunks.values() for _, _, data in chunks)
    estimate = stored / first_items * total if total is not None and first_items else stored * blocks
    return int(estimate * margin) + (1 << 20)


class Progress:
    """Rank 0's progress lines: patches (or, when the counts are not known, blocks) done of the total, the
    rate and the time left, at every tenth of the work or every ``every`` seconds, whichever comes first."""

    def __init__(self, name: str, total: int | None, blocks: int, log, every: float = 30.0):
        self.name, self.log, self.every = name, log, every
        self.total, self.what = (total, "patches") if total is not None else (blocks, "blocks")
        self.done_n = 0
        self.start = self.last = time.perf_counter()
        self.next_tenth = 1

    def done(self, items: int | None) -> None:
        self.done_n += items if self.what == "patches" and items is not None else 1
        now = time.perf_counter()
        share = self.done_n / self.total if self.total else 1.0
        if share * 10 >= self.next_tenth or now - self.last >= self.every:
            while self.next_tenth <= share * 10:
                self.next_tenth += 1
            self.last = now
            rate = self.done_n / max(now - self.start, 1e-9)
            left = (self.total - self.done_n) / rate if rate else float("inf")
            self.log(
                f"{self.name}: {share:.0%} ({self.done_n} of {self.total} {self.what}), "
                f"{rate:.1f} {self.what}/s, {left:.0f} s left"
            )
