"""Readers and checkers for the input formats (MetaImage, DICOM, CSV tables)."""
