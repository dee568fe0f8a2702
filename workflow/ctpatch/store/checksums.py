"""Fletcher32 checksums of stored chunks, checked without decompressing.

Every patch dataset carries HDF5's Fletcher32 checksum as the last filter of its pipeline (after
the codec), so every reader (h5py, any HDF5 tool) checks each chunk it reads and a changed byte
fails the read; :func:`chunk_checksum_ok` and :func:`fletcher32_ok_many` check stored chunks where
they lie.
"""

from __future__ import annotations

import numpy as np

from ctpatch.store.codecs import _pipeline
from ctpatch.store.h5 import h5py

_FLETCHER_BLOCK = 4096  # 16-bit words per row of the block sums in :func:`fletcher32_mod`


def fletcher32_mod(data: bytes) -> tuple[int, int]:
    """HDF5's Fletcher32 sums of ``data`` (big-endian 16-bit words, an odd last byte padded), mod 65535.

    HDF5 stores ``sum2 << 16 | sum1`` (little-endian) after the chunk's bytes; it reduces the sums
    only partially, so the stored halves are compared modulo 65535.  Computed with block sums
    instead of the serial loop: ``sum1 = Σ w_i``, ``sum2 = Σ (n - i) w_i``;
    the words are read in native little-endian order, since ``256 · w_le ≡ w_be (mod 65535)``.

    >>> fletcher32_mod(b"abcde")
    (10695, 20464)
    """
    n2 = len(data) // 2
    w = np.frombuffer(data, "<u2", count=n2)
    n = n2 + len(data) % 2
    m = _FLETCHER_BLOCK
    full = (n2 // m) * m
    s1 = s2 = 0
    if full:
        blocks = w[:full].reshape(-1, m)
        acc = np.uint32 if len(blocks) < 65536 else np.uint64  # no overflow: a sum of < 65536 words of < 65536
        per_block = blocks.sum(axis=1, dtype=acc).astype(np.uint64)
        per_column = blocks.sum(axis=0, dtype=acc).astype(np.uint64)
        first = (n - np.arange(len(per_block), dtype=np.uint64) * m) % 65535
        s1 += int(per_block.sum())
        s2 += int(np.dot(first, per_block % 65535)) - int(np.dot(np.arange(m, dtype=np.uint64), per_column % 65535))
    rest = w[full:].astype(np.uint64)
    if len(data) % 2:
        rest = np.append(rest, np.uint64(data[-1]))
    if len(rest):
        s1 += int(rest.sum())
        s2 += int(np.dot(np.arange(len(rest), 0, -1, dtype=np.uint64), rest))
    return s1 * 256 % 65535, s2 * 256 % 65535


#: chunks up to this size (bytes) are checked many at a time by :func:`fletcher32_ok_many`
SMALL_CHUNK = 1 << 16


def fletcher32_ok_many(buf: np.ndarray, offsets, sizes) -> np.ndarray:
    """Whether each stored chunk ``buf[offset : offset + size]`` (checksum included, each at most
    :data:`SMALL_CHUNK` bytes and at least 4) matches its Fletcher32 checksum; ``buf`` is a uint8 array
    (a memory-mapped file).  The same sums as :func:`fletcher32_mod`, for many small chunks at once:
    a batch of chunks is copied as rows of a matrix (a strided view of the file gives each chunk's
    16-bit words), the bytes past each chunk's end zeroed, and one float64 product with the columns
    ``1`` and ``i`` gives every row's ``Σ w_i`` and ``Σ i·w_i`` (exact: below 2^53 for chunks of this
    size); ``sum2 = n·Σ w_i - Σ i·w_i``.  Much cheaper than :func:`fletcher32_mod` per chunk for small chunks.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    offsets = np.asarray(offsets, dtype=np.int64)
    sizes = np.asarray(sizes, dtype=np.int64)
    if np.any(sizes < 4) or np.any(sizes > SMALL_CHUNK) or np.any(offsets + sizes > len(buf)):
        raise ValueError(
            f"Expected chunks of 4..{SMALL_CHUNK} bytes inside the buffer, got sizes {sizes.min()}..{sizes.max()}"
        )
    length = sizes - 4  # the checked bytes; the checksum follows them
    n2 = length // 2
    s1 = np.zeros(len(sizes), dtype=np.int64)
    sw = np.zeros(len(sizes), dtype=np.int64)
    for parity in (0, 1):  # 16-bit words of chunks at even and at odd byte offsets
        words = np.frombuffer(buf, "<u2", count=(len(buf) - parity) // 2, offset=parity)
        sel = np.flatnonzero(offsets % 2 == parity)
        sel = sel[np.argsort(n2[sel], kind="stable")]  # similar sizes share a batch: little padding
        start = 0
        while start < len(sel):
            width = max(1, int(n2[sel[min(len(sel), start + 64) - 1]]))
            rows = max(1, (1 << 21) // (8 * width))  # ~2 MB of float64 per batch
            batch = sel[start : start + rows]
            width = max(1, int(n2[batch].max()))
            first = (offsets[batch] - parity) // 2
            fits = first + width <= len(words)  # a chunk near the end of the file: its own row
            cols = np.arange(width)
            weights = np.stack([np.ones(width), cols.astype(np.float64)], axis=1)
            view = sliding_window_view(words, width)
            m = view[first[fits]].astype(np.float64)
            m[cols[None, :] >= n2[batch[fits]][:, None]] = 0.0
            r = m @ weights
            s1[batch[fits]], sw[batch[fits]] = r[:, 0].astype(np.int64), r[:, 1].astype(np.int64)
            for k in batch[~fits]:
                w = words[first[batch == k][0] : first[batch == k][0] + n2[k]].astype(np.int64)
                s1[k], sw[k] = int(w.sum()), int(np.dot(np.arange(len(w), dtype=np.int64), w))
            start += len(batch)
    odd = length % 2 == 1
    s2 = (n2 + odd) * s1 - sw
    tail = buf[offsets[odd] + length[odd] - 1].astype(np.int64)  # an odd last byte: one more word
    s1[odd] += tail
    s2[odd] += tail
    stored = buf[(offsets + length)[:, None] + np.arange(4)].astype(np.int64) << np.array([0, 8, 16, 24])
    stored = stored.sum(axis=1)
    return (s1 * 256 % 65535 == (stored & 0xFFFF) % 65535) & (s2 % 65535 * 256 % 65535 == (stored >> 16) % 65535)


def chunk_checksum_ok(raw) -> bool:
    """Whether a stored chunk of a Fletcher32 dataset (bytes or a memoryview, as ``read_direct_chunk``
    returns it) matches its checksum."""
    if len(raw) < 4:
        return False
    stored = int.from_bytes(bytes(raw[-4:]), "little")
    return fletcher32_mod(raw[:-4]) == ((stored & 0xFFFF) % 65535, (stored >> 16) % 65535)


def has_fletcher32(ds: h5py.Dataset) -> bool:
    """True when Fletcher32 is the last filter of the dataset's pipeline (the checksum covers the stored bytes)."""
    pipeline = _pipeline(ds)
    return bool(pipeline) and pipeline[-1][0] == h5py.h5z.FILTER_FLETCHER32
