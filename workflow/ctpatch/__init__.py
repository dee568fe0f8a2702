"""ctpatch: CT scans (LUNA16 nodule mode, LDCT input/target mode) to HDF5 training patches."""

__version__ = "0.1.0"
