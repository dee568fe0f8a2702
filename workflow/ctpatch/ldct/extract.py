"""``mpiexec -n N python -m ctpatch.ldct.extract ...``: the LDCT extraction of every patient, as one MPI program.

Usage (one MPI world writes every patient's file in turn)::

    mpiexec -n 2 python -m ctpatch.ldct.extract --ranks 2 --settings-file patches.json \\
        --pairs pairs/L096.tsv pairs/L143.tsv --out patches/L096.h5 patches/L143.h5

Each pair table (:mod:`ctpatch.ldct.pairing`) is one patient, named after the table (``L096.tsv``:
``L096``, the files' ``group`` attribute), and writes the ``--out`` files at its position: one per
patient, or the ``output.nsplit`` parts of each patient together (``L096.part0.h5 L096.part1.h5
L143.part0.h5 ...``).  With several patients every output must be named after its patient.
``--group NAME`` instead makes every table one group of that name, written to the ``--out`` file(s)
(several patients in one file).  ``--ranks``, ``--plan``, ``--settings-file`` and ``--out`` are those of
:func:`ctpatch.engine.mpi.parse_args`; :class:`~ctpatch.ldct.job.Job` does the work.
"""

import sys
from pathlib import Path

from ctpatch.cli import per_group
from ctpatch.engine.mpi import Group
from ctpatch.engine.mpi import main as run_main
from ctpatch.ldct.job import Job


class Inputs:
    """The pair tables: one group per table (patient), or all of them as one ``--group``."""

    @staticmethod
    def add(ap) -> None:
        ap.add_argument(
            "--pairs", nargs="+", required=True, help="pair tables, one per patient, in the order of the --out files"
        )
        ap.add_argument(
            "--group",
            default=None,
            help="every table as ONE group of this name, written to the --out file(s) (default: one group per table)",
        )

    @staticmethod
    def groups(args) -> list[Group]:
        tables = list(args.pairs)
        if args.group is not None:
            return [Group(args.group, list(args.out), {"pairs": tables})]
        names = [Path(t).stem for t in tables]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"--pairs: expected one table per patient, got several for {twice}")
        outs = per_group(names, list(args.out), "--out")
        return [Group(name, out, {"pairs": [table]}) for name, table, out in zip(names, tables, outs)]


def main(argv=None) -> int:
    return run_main(Job, Inputs, argv)


if __name__ == "__main__":
    sys.exit(main())
