"""``mpiexec -n N python -m ctpatch.luna16.extract ...``: the LUNA16 extraction of one subset, as an MPI program.

Usage::

    mpiexec -n 2 python -m ctpatch.luna16.extract --ranks 2 --settings-file patches.json \\
        --group subset0 --out subset0.h5 --sidecars volumes/subset0/*.json \\
        --masks-dir labels/subset0/masks --nodules labels/subset0/nodules.tsv [--candidates candidates.csv]

``--ranks``, ``--plan``, ``--settings-file`` and ``--out`` are those of :func:`ctpatch.engine.mpi.parse_args`;
the inputs are described in :mod:`ctpatch.luna16.job`, whose :class:`~ctpatch.luna16.job.Job` does the work.
"""

import sys

from ctpatch.engine.mpi import Group
from ctpatch.engine.mpi import main as run_main
from ctpatch.luna16.job import Job, add_input_arguments, input_paths


class Inputs:
    """The subset's input arguments (one group: the subset)."""

    @staticmethod
    def add(ap) -> None:
        ap.add_argument("--group", default="", help="the subset, recorded as the file's 'group' attribute")
        ap.add_argument("--nodules", required=True, help="the subset's nodule table")
        add_input_arguments(ap)

    @staticmethod
    def groups(args) -> list[Group]:
        return [Group(args.group, list(args.out), input_paths(args))]


def main(argv=None) -> int:
    return run_main(Job, Inputs, argv)


if __name__ == "__main__":
    sys.exit(main())
