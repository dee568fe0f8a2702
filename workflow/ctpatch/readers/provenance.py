"""Provenance rows as dicts that PyTorch's default collate accepts for any mix of kinds and files.

A :class:`ProvenanceFields` is the union of the fields of the provenance tables a dataset reads
(e.g. ``provenance/nodule`` and ``provenance/non_nodule``), in a fixed order.  Every item's dict has
every field of that union with one Python or numpy type per field: a row of a table that lacks a
field gets the field's fill value (:func:`fill_value`: -1 for integers, NaN for floats, ``""`` for
text, False for flags, arrays of those).  So ``default_collate`` (which needs equal keys and
equal types across a batch) collates a nodule and a non-nodule patch; the item's ``kind`` tells
which fields are its own.

Values: text is ``str``, integer and float scalars are ``int`` and ``float``, flags ``bool``,
vectors numpy arrays of the union's dtype.
"""

from __future__ import annotations

import numpy as np


def fill_value(dtype: np.dtype):
    """The value a row without this field gets.

    >>> fill_value(np.dtype("<i4")), fill_value(np.dtype("S8")), fill_value(np.dtype("?"))
    (-1, '', False)
    """
    if dtype.kind in "SUO":
        return ""
    if dtype.kind == "b":
        return False
    if dtype.kind in "iu":
        return -1
    return float("nan")


class ProvenanceFields:
    """The union of the fields of several provenance table dtypes (see the module docstring)."""

    def __init__(self, dtypes, where: str = ""):
        self.fields: dict[str, tuple[np.dtype, tuple]] = {}
        for dt in dtypes:
            for name in dt.names:
                base, shape = dt[name].base, dt[name].shape
                prev = self.fields.get(name)
                if prev is None:
                    self.fields[name] = (base, shape)
                    continue
                if prev[1] != shape or (prev[0].kind in "SU") != (base.kind in "SU"):
                    raise ValueError(
                        f"{where}: provenance field {name!r} is {prev[0]}{list(prev[1])} in one table "
                        f"and {base}{list(shape)} in another; one dataset needs one type per field"
                    )
                if base.kind not in "SU":
                    self.fields[name] = (np.result_type(prev[0], base), shape)
        self._fills = {name: self._fill(base, shape) for name, (base, shape) in self.fields.items()}

    @staticmethod
    def _fill(base: np.dtype, shape: tuple):
        v = fill_value(base)
        if not shape:
            return v
        return np.full(shape, v, dtype=base)

    def names(self) -> list[str]:
        """The provenance keys every item carries, whatever its kind."""
        return list(self.fields)

    def as_dict(self, rec: np.void) -> dict:
        """One row as a dict with every field of the union (its own values, fill values for the rest)."""
        own = rec.dtype.names
        out = {}
        for name, (base, shape) in self.fields.items():
            if name not in own:
                fill = self._fills[name]
                out[name] = fill.copy() if isinstance(fill, np.ndarray) else fill
                continue
            v = rec[name]
            if shape:
                out[name] = np.array(v, dtype=base)
            elif base.kind in "SU":
                out[name] = v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)
            elif base.kind == "b":
                out[name] = bool(v)
            elif base.kind in "iu":
                out[name] = int(v)
            else:
                out[name] = float(v)
        return out


class DicomSpacing:
    """In-plane pixel spacing (row, col) in mm of LDCT source slices, read once per file from its header.

    NaN when the file cannot be read (the patch file records paths to the source DICOM files; a
    copy of the patches without them still reads, without spacing).
    """

    def __init__(self):
        self._cache: dict[str, np.ndarray] = {}

    def __call__(self, path: str) -> np.ndarray:
        got = self._cache.get(path)
        if got is None:
            got = np.full(2, np.nan)
            import pydicom
            import pydicom.errors

            try:
                ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["PixelSpacing"])
                if "PixelSpacing" in ds:
                    got = np.asarray([float(v) for v in ds.PixelSpacing], dtype=np.float64)
            except (OSError, ValueError, TypeError, AttributeError, pydicom.errors.InvalidDicomError):
                pass  # documented: NaN spacing when the source slice cannot be read
            self._cache[path] = got
        return got.copy()
