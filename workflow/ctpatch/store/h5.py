"""HDF5 as ctpatch writes and reads it: h5py with the plugin codecs registered.

Import ``h5py`` from here (``from ctpatch.store.h5 import h5py``) in every module that opens patch
files, so that the Blosc2 codec is registered before the first read or write, and only those
modules pay for it: ``import ctpatch.core.geometry`` (or any numerics module) loads neither h5py nor
hdf5plugin.

* One Blosc thread per process.  The MPI ranks (and data-loader workers) already use the cores,
  and the c-blosc2 of hdf5plugin 7.1 otherwise starts 4 threads per process (measured, on 2
  CPUs).  With more than one thread the same data compress to different bytes from run to run
  (measured), so :func:`ctpatch.store.codecs.create_patch_dataset` refuses to write Blosc2 unless
  ``BLOSC_NTHREADS`` is 1.  An explicit ``BLOSC_NTHREADS`` is kept (more threads can speed up
  reading).
* The default patch codec is Blosc2 (``store.COMPRESSION``), an HDF5 plugin filter h5py does not
  ship.  Importing hdf5plugin registers it (and its other filters) with the HDF5 library, once per
  process.  Bare-h5py readers of our files must ``import hdf5plugin`` themselves (README,
  "Output files").
"""

import os

os.environ.setdefault("BLOSC_NTHREADS", "1")

import h5py  # noqa: E402
import hdf5plugin  # noqa: E402

__all__ = ["h5py", "hdf5plugin"]
