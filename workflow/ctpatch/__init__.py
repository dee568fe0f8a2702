"""ctpatch: CT scans (LUNA16 nodule mode, LDCT input/target mode) to HDF5 training patches.

Importing the package loads nothing heavy: the modules that open HDF5 files get h5py (with the
Blosc2 codec registered) from :mod:`ctpatch.store.h5`.
"""

__version__ = "0.1.0"
