"""``mpiexec -n N python -m ctpatch.ldct.extract ...``: the LDCT extraction of every patient, as one MPI program.

The arguments are those of :func:`ctpatch.engine.mpi.parse_args`; the work is :class:`ctpatch.ldct.job.Job`.
"""

import sys

from ctpatch.engine.mpi import main
from ctpatch.ldct.job import Job

if __name__ == "__main__":
    sys.exit(main(Job))
