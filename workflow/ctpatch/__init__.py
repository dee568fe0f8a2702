"""ctpatch: CT scans (LUNA16 nodule mode, LDCT input/target mode) to HDF5 training patches."""

import os

# One Blosc thread per process.  The MPI ranks (and data-loader workers) already use the cores, and
# the c-blosc2 of hdf5plugin 7.1 otherwise starts 4 threads per process (measured, on 2 CPUs).  With
# more than one thread the same data compress to different bytes from run to run (measured), so
# store.create_patch_dataset refuses to write Blosc2 unless BLOSC_NTHREADS is 1.  An explicit
# BLOSC_NTHREADS is kept (more threads can speed up reading).
os.environ.setdefault("BLOSC_NTHREADS", "1")

# The default patch codec is Blosc2 (store.COMPRESSION), an HDF5 plugin filter h5py does not ship.
# Importing hdf5plugin registers it (and its other filters) with the HDF5 library, once per
# process, so every process that imports anything from ctpatch (extraction ranks, merge, verify,
# ctpatch.data in a training script) writes and reads the files.  Bare-h5py readers of our files
# must `import hdf5plugin` themselves (README, "Output files").  Cost: ~12 ms on top of h5py.
import hdf5plugin  # noqa: E402,F401

__version__ = "0.1.0"
