"""The extraction as an MPI program: one world of ``--ranks`` ranks runs a mode's job per group.

A mode's entry point (``python -m ctpatch.luna16.extract``, ``python -m ctpatch.ldct.extract``) calls
:func:`main` with its job class and its input arguments (an object with ``add(parser)``, which adds
the mode's arguments, and ``groups(args)``, which turns the parsed arguments into the job's
:class:`Group` list: one subset, or one group per patient).  The program first checks that the MPI
world has the size it was asked for: a launcher that starts N separate one-rank worlds (``srun -n
N`` without ``--mpi=pmi2``) would otherwise write N copies.  Every group of the job runs through
:func:`ctpatch.engine.run.extract` in this one world (one start-up, not one per patient), its files
recording the settings and inputs that made them (:func:`ctpatch.store.identity.record`).  A rank that
fails stops every rank.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

from ctpatch.engine.run import comm_host, extract, extraction_attrs
from ctpatch.settings import key_schema, read_settings


def say(msg: str, stream=None) -> None:
    """Print one line in ONE write: the ranks share the launcher's pipe, and a line written in pieces (text,
    then its newline) runs into another rank's line (``rank 1: … on host vmrank 0: …``)."""
    stream = sys.stdout if stream is None else stream
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test's capture): print is one piece there
        print(msg, file=stream, flush=True)
        return
    stream.flush()
    os.write(fd, (msg + "\n").encode())


def run(job_class, args, comm) -> None:
    rank, size = comm.Get_rank(), comm.Get_size()
    if size != args.ranks:
        raise RuntimeError(
            f"expected an MPI world of {args.ranks} ranks, got {size}: the launcher did not start one "
            f"MPI world (with SLURM use 'srun --mpi=pmi2', not plain 'srun')"
        )
    # the host shows where the launcher put each rank (two hosts when a job spans two nodes)
    say(f"rank {rank}: MPI world size {size} on host {comm_host()}")
    groups = args.groups
    settings = read_settings(args.settings_file, scope="patches")
    log = say
    for g in groups:  # one MPI world for every group of the job: one start-up, not one per patient
        job = job_class(settings, g.inputs)
        counts = extract(job, g.out, extraction_attrs(job, g.group), comm, log=log, buffer=args.buffer_patches)
        if rank == 0:
            say(f"extraction done: {counts} rows in {', '.join(g.out)} on {size} ranks")


@dataclass(frozen=True)
class Group:
    """One group's extraction in a job: its name (the files' 'group' attribute), output file(s) and inputs."""

    group: str
    out: list
    inputs: dict

    @property
    def name(self) -> str:
        return self.group or Path(self.out[0]).stem


def parse_args(arguments, argv=None, prog: str = "python -m ctpatch.<mode>.extract"):
    """``--ranks``, ``--buffer-patches``, ``--settings-file`` and ``--out``, plus the mode's ``arguments``; the job's
    groups in ``args.groups`` (a bad combination of arguments exits 2 naming the argument)."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, required=True, help="the MPI world size this run must have")
    ap.add_argument(
        "--buffer-patches",
        type=int,
        default=key_schema("extract.buffer_patches")["default"],
        help="patches per dataset a rank compresses at a time (extract.buffer_patches; memory, not bytes; "
        "default: the schema's)",
    )
    ap.add_argument(
        "--out", nargs="+", required=True, help="the patch file(s): one, or output.nsplit parts, per group in order"
    )
    ap.add_argument(
        "--settings-file", required=True, help="settings of scope 'patches' (ctpatch.settings), recorded in the files"
    )
    arguments.add(ap)
    args = ap.parse_args(argv)
    if args.ranks < 1:
        ap.error(f"Expected --ranks >= 1, got {args.ranks}")
    if args.buffer_patches < 1:
        ap.error(f"Expected --buffer-patches >= 1, got {args.buffer_patches}")
    try:
        args.groups = arguments.groups(args)
    except ValueError as exc:
        ap.error(str(exc))
    return args


def main(job_class, arguments, argv=None) -> int:
    """Parse the arguments (``arguments``: the mode's, see :func:`parse_args`) and run ``job_class`` (a
    mode's ``Job``) on every group, on this MPI world."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    try:
        args = parse_args(arguments, argv, f"python -m ctpatch.{job_class.mode}.extract")
        run(job_class, args, comm)
    except SystemExit:
        raise
    except BaseException as exc:  # one rank failing must stop every rank, never hang a barrier
        msg = str(exc) if isinstance(exc, (ValueError, RuntimeError, OSError)) else traceback.format_exc()
        if isinstance(exc, OSError) and exc.strerror:  # "[Errno 28] ..." -> the message alone
            msg = exc.strerror
        say(f"rank {comm.Get_rank()}: error: {msg}", sys.stderr)
        comm.Abort(1)
    return 0
