"""Value statistics of stored patches: min, max, NaN/inf counts and values at an integer dtype's limits."""

from __future__ import annotations

import numpy as np


# ------------------------------------------------------------------------------- value statistics
def dtype_limits(dtype) -> tuple[int, ...]:
    """The values of an integer dtype where a value may have been clipped or wrapped: its maximum, and
    its minimum when signed (0 of uint16 is ordinary air); none for float dtypes.

    >>> dtype_limits("int16"), dtype_limits("uint16"), dtype_limits("float16")
    ((-32768, 32767), (65535,), ())
    """
    dt = np.dtype(dtype)
    if not np.issubdtype(dt, np.integer):
        return ()
    info = np.iinfo(dt)
    return (int(info.min), int(info.max)) if info.min < 0 else (int(info.max),)


def value_stats(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per patch of ``stack`` ((k, ...) stored patches, the file's dtype): (min, max, nonfinite,
    at_limits), each of shape (k,): min and max of its finite values (NaN when there are none), the
    count of NaN/inf values, and the count of values at :func:`dtype_limits` of the dtype.  What
    :data:`STAT_FIELDS` record.

    >>> [v.tolist() for v in value_stats(np.array([[0, 7], [65535, 3]], dtype=np.uint16))]
    [[0.0, 3.0], [7.0, 65535.0], [0, 0], [0, 1]]
    >>> [v.tolist() for v in value_stats(np.array([[1.5, np.nan, -2.0]], dtype=np.float16))]
    [[-2.0], [1.5], [1], [0]]
    """
    a = np.asarray(stack)
    flat = a.reshape(len(a), -1)
    wide = flat.astype(np.float64)  # exact for every stored dtype; fast reductions
    ok = np.isfinite(wide)
    nonfinite = flat.shape[1] - np.count_nonzero(ok, axis=1)
    if nonfinite.any():
        lo, hi = np.where(ok, wide, np.inf).min(axis=1), np.where(ok, wide, -np.inf).max(axis=1)
        lo[nonfinite == flat.shape[1]] = hi[nonfinite == flat.shape[1]] = np.nan
    else:
        lo, hi = wide.min(axis=1), wide.max(axis=1)
    at = np.zeros(len(a), dtype=np.int64)
    for v in dtype_limits(a.dtype):
        at += np.count_nonzero(flat == v, axis=1)
    return lo, hi, nonfinite.astype(np.int64), at
