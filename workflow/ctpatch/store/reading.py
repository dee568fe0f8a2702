"""What a reader outside ctpatch needs to open a patch file: one sentence per codec.

The Blosc2 codecs (``blosc2-zstd``, ``blosc2-lz4``) are HDF5 filter plugins that h5py does not
ship: plain h5py then fails on the first patch read with ``OSError: Can't synchronously read
data (can't open directory .../plugin)``.  ``import hdf5plugin`` (>= 4.3) before reading
registers the filter.  ``lzf``, ``gzip`` and ``none`` open with plain h5py (gzip and none with
any HDF5 library).  :func:`reader_needs` is the sentence the verification report, its table and
the plan print.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ctpatch.store.h5 import h5py

#: codecs that h5py reads without any plugin
PLAIN_H5PY = ("lzf", "gzip", "none")


def reader_needs(codecs: Iterable[str]) -> str:
    """One sentence saying what a reader with h5py and numpy needs for datasets of these codecs.

    Examples
    --------
    >>> reader_needs(["gzip"])
    'plain h5py opens these files (codec gzip): nothing to import besides h5py and numpy'
    >>> reader_needs(["blosc2-lz4"]).split(":")[0]
    'IMPORT hdf5plugin BEFORE READING (codec blosc2-lz4, a Blosc2 HDF5 filter h5py does not ship)'
    """
    names = sorted(set(codecs))
    if not names:
        return "no patch datasets found"
    if all(c in PLAIN_H5PY for c in names):
        return f"plain h5py opens these files (codec {', '.join(names)}): nothing to import besides h5py and numpy"
    return (
        f"IMPORT hdf5plugin BEFORE READING (codec {', '.join(names)}, a Blosc2 HDF5 filter h5py does not ship): "
        "`import hdf5plugin` (>= 4.3) next to `import h5py`, else the first read fails with "
        "\"OSError: Can't synchronously read data (can't open directory .../plugin)\"; for files that plain "
        "h5py opens, write output.compression gzip (config/reference-luna16.yaml, config/reference-ldct.yaml)"
    )


def reader_brief(codecs: Iterable[str]) -> str:
    """The first clause of :func:`reader_needs`: what a table cell has room for.

    >>> reader_brief(["blosc2-zstd"])
    'IMPORT hdf5plugin BEFORE READING (codec blosc2-zstd)'
    >>> reader_brief(["gzip"])
    'plain h5py (codec gzip)'
    """
    names = sorted(set(codecs))
    if not names:
        return "no patch datasets found"
    if all(c in PLAIN_H5PY for c in names):
        return f"plain h5py (codec {', '.join(names)})"
    return f"IMPORT hdf5plugin BEFORE READING (codec {', '.join(names)})"


def file_codecs(path) -> list[str]:
    """The ``codec`` attributes of the patch datasets in an HDF5 file (sorted, distinct).

    Only the metadata is read, so this works without the filter plugin.
    """
    found: set[str] = set()

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and "codec" in obj.attrs:
            value = obj.attrs["codec"]
            found.add(value.decode() if isinstance(value, bytes) else str(value))

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    return sorted(found)


def missing_virtual_sources(f: h5py.File, where: str = "") -> list[str]:
    """The source files a file's virtual datasets map onto that are not there (relative names are
    resolved beside the file, as HDF5 resolves them).  HDF5 reads a missing source as the fill value,
    without an error: a reader must ask first."""
    base = Path(f.filename).resolve().parent
    missing = []
    for name in ("input", "target"):
        ds = f.get(name)
        if ds is None or not ds.is_virtual:
            continue
        for vs in ds.virtual_sources():
            src = Path(vs.file_name)
            src = src if src.is_absolute() else base / src
            if not src.is_file() and str(src) not in missing:
                missing.append(str(src))
    return missing


def check_virtual_sources(f: h5py.File, path) -> None:
    """Raise ``ValueError`` naming the file and the first missing source of its virtual datasets."""
    missing = missing_virtual_sources(f)
    if missing:
        raise ValueError(
            f"{path}: its patches are virtual datasets over other files, and {len(missing)} of them are not "
            f"there, e.g. {missing[0]} (keep the per-patient files beside the combined file, or write it with "
            f"output.combined: copy)"
        )
