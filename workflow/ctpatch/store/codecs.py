"""The codecs of the patch datasets and how a patch dataset is created: one patch per chunk, the codec's
filter, then Fletcher32.

Codecs (:data:`COMPRESSION`): ``blosc2-zstd`` (zstd level 1 after a byte shuffle, through the Blosc2
filter of ``hdf5plugin``), ``blosc2-lz4``, ``lzf``, ``gzip`` (level 1) and ``none``.  Each patch dataset
records its codec name in the attribute ``codec`` (:func:`codec_of`).  Chunks are exactly one patch:
reading one patch decompresses one patch, and compressed chunk bytes can be moved as they are.
"""

from __future__ import annotations

import os

from ctpatch.settings import key_schema
from ctpatch.store.h5 import h5py, hdf5plugin

#: codec name -> ``create_dataset`` keywords.  Blosc2 comes from ``hdf5plugin`` (imported by
#: ``ctpatch/__init__.py``, which registers the filter); ``filters=SHUFFLE`` is Blosc2's byte shuffle.
COMPRESSION = {
    "blosc2-zstd": dict(hdf5plugin.Blosc2(cname="zstd", clevel=1, filters=hdf5plugin.Blosc2.SHUFFLE)),
    "blosc2-lz4": dict(hdf5plugin.Blosc2(cname="lz4", clevel=5, filters=hdf5plugin.Blosc2.SHUFFLE)),
    "lzf": {"compression": "lzf"},
    "gzip": {"compression": "gzip", "compression_opts": 1},
    "none": {},
}


#: the default codec of the patch datasets: the schema's (both modes share it)
DEFAULT_CODEC = key_schema("luna16.output.compression")["default"]


#: c-blosc2 reads these at every compression and lets them override the parameters the dataset was
#: created with (measured with hdf5plugin 7.1: each changed the bytes written; ``BLOSC_TYPESIZE=8``
#: wrote chunks that failed to read back).
BLOSC_OVERRIDES = (
    "BLOSC_CLEVEL",
    "BLOSC_COMPRESSOR",
    "BLOSC_TYPESIZE",
    "BLOSC_BLOCKSIZE",
    "BLOSC_SPLITMODE",
    "BLOSC_DELTA",
)


def _blosc_env_problems() -> list[str]:
    """Environment settings under which Blosc2 would not write the codec's reproducible bytes.

    Besides :data:`BLOSC_OVERRIDES`: more than one Blosc thread (``BLOSC_NTHREADS``, which
    ``ctpatch/__init__`` sets to 1 unless already set): the same data then gave different bytes
    from run to run (measured with 2 and 4 threads; with 1 thread the bytes are the same).
    """
    bad = [f"{k}={os.environ[k]}" for k in BLOSC_OVERRIDES if k in os.environ]
    threads = os.environ.get("BLOSC_NTHREADS")
    try:
        one = int(threads) == 1
    except (TypeError, ValueError):
        one = False
    if not one:
        bad.append(f"BLOSC_NTHREADS={threads}" if threads is not None else "BLOSC_NTHREADS unset")
    return bad


def create_patch_dataset(
    group: h5py.Group, name: str, patch_shape, dtype, compression: str = DEFAULT_CODEC, rows: int = 0
) -> h5py.Dataset:
    """A growable dataset of ``rows`` patches (unwritten), chunked one patch per chunk, the codec's filter
    then Fletcher32; its codec name in attribute ``codec``."""
    if compression not in COMPRESSION:
        raise ValueError(f"Expected compression in {sorted(COMPRESSION)}, got {compression!r}")
    if compression.startswith("blosc2") and (bad := _blosc_env_problems()):
        raise ValueError(
            f"Expected BLOSC_NTHREADS=1 and none of {', '.join(BLOSC_OVERRIDES)} in the environment "
            f"when writing {compression}, got {', '.join(bad)}: c-blosc2 would override the codec's "
            f"parameters or write bytes that differ from run to run"
        )
    patch_shape = tuple(int(n) for n in patch_shape)
    ds = group.create_dataset(
        name,
        shape=(int(rows), *patch_shape),
        maxshape=(None, *patch_shape),
        dtype=dtype,
        chunks=(1, *patch_shape),
        fletcher32=True,
        **COMPRESSION[compression],
    )
    ds.attrs["codec"] = compression
    return ds


def _pipeline(ds: h5py.Dataset) -> tuple:
    """The dataset's filter pipeline as (filter id, flags, parameters) per filter, in order."""
    plist = ds.id.get_create_plist()
    return tuple(tuple(plist.get_filter(i)[:3]) for i in range(plist.get_nfilters()))


def _describe(ds: h5py.Dataset) -> str:
    """``file:dataset`` with its filters (name and parameters), for error messages."""
    plist = ds.id.get_create_plist()
    filters = []
    for i in range(plist.get_nfilters()):
        fid, _, params, fname = plist.get_filter(i)
        filters.append(f"{fname.decode(errors='replace') or fid}{params}")
    return f"{ds.file.filename}:{ds.name} (filters: {', '.join(filters) or 'none'})"


def codec_of(ds: h5py.Dataset) -> str:
    """The codec name (a key of :data:`COMPRESSION`) of a patch dataset: its ``codec`` attribute.

    A dataset without one (not written by :func:`create_patch_dataset`) raises ``ValueError`` naming
    the file and dataset.
    """
    codec = ds.attrs.get("codec")
    if codec is None:
        raise ValueError(
            f"Expected a patch dataset written by ctpatch, got {_describe(ds)} without a 'codec' attribute"
        )
    return codec.decode() if isinstance(codec, bytes) else str(codec)
