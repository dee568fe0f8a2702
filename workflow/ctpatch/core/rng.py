"""Random generators keyed by content, never by MPI rank.

Every random draw in ctpatch comes from ``keyed_rng(seed, *keys)`` where the keys name
what the draw is for (a scan uid, a slice path, an augmentation name, an index).  The
same seed and keys give the same stream on any rank and for any rank count, which is
what makes the output byte-identical for 1, 2 or N ranks.
"""

from __future__ import annotations

import hashlib

import numpy as np


def key_words(*keys: object) -> list[int]:
    """Turn arbitrary keys (str, int, float, tuple) into 32-bit words, stably across runs.

    Python's ``hash()`` is salted per process, so a digest of the ``repr`` is used instead.

    >>> key_words("L096", 3) == key_words("L096", 3)
    True
    """
    digest = hashlib.sha256(repr(tuple(keys)).encode("utf-8")).digest()
    return [int.from_bytes(digest[i : i + 4], "little") for i in range(0, 16, 4)]


def keyed_rng(seed: int, *keys: object) -> np.random.Generator:
    """A ``numpy.random.Generator`` determined by ``seed`` and the ``keys`` alone.

    >>> a = keyed_rng(0, "scan-1", "negatives").integers(0, 1000, 3)
    >>> b = keyed_rng(0, "scan-1", "negatives").integers(0, 1000, 3)
    >>> bool((a == b).all())
    True
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"Expected a non-negative integer seed, got {seed!r}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), *key_words(*keys)]))
