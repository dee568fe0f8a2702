"""``mpiexec -n N python -m ctpatch.luna16.extract ...``: the LUNA16 extraction of one subset, as an MPI program.

The arguments are those of :func:`ctpatch.engine.mpi.parse_args`; the work is :class:`ctpatch.luna16.job.Job`.
"""

import sys

from ctpatch.engine.mpi import main
from ctpatch.luna16.job import Job

if __name__ == "__main__":
    sys.exit(main(Job))
