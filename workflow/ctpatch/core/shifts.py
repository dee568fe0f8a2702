"""Strided shifts of a nodule-centred patch (SPEC §1.6).

With stride ``S`` and ``M`` shifts per side, a nodule gives its centre patch plus, for every
direction (a set of axes among x, y, z) and every ``k = 1..M``, the patch moved by ``+S*k`` and
by ``-S*k`` on each axis of the direction.  With the 7 default directions that is
``1 + 7 * 2 * M`` patches: 57 for ``M = 4``.
"""

from __future__ import annotations

import numpy as np

DEFAULT_DIRECTIONS = ("x", "y", "z", "xy", "xz", "yz", "xyz")
_AXIS = {"x": 0, "y": 1, "z": 2}


def check_directions(directions) -> tuple[str, ...]:
    """Validate direction names: non-empty strings of distinct letters among x, y, z, no repeats."""
    out = []
    for d in directions:
        if not isinstance(d, str) or not d or any(c not in _AXIS for c in d) or len(set(d)) != len(d):
            raise ValueError(f"Expected a direction made of distinct letters x, y, z, got {d!r}")
        canon = "".join(sorted(d, key=_AXIS.get))
        if canon in out:
            raise ValueError(f"Expected distinct directions, got {d!r} twice in {list(directions)!r}")
        out.append(canon)
    return tuple(out)


def shift_offsets(stride: int, shifts_per_side: int, directions) -> np.ndarray:
    """All shift vectors of one nodule, (x, y, z) voxels, shape (1 + 2 * M * len(directions), 3).

    Row 0 is the centre (0, 0, 0); then for each direction in the given order, for
    ``k = 1..M``: ``+S*k`` on the direction's axes, then ``-S*k``.

    >>> off = shift_offsets(8, 4, DEFAULT_DIRECTIONS)
    >>> off.shape, off[1].tolist(), off[2].tolist(), off[-1].tolist()
    ((57, 3), [8, 0, 0], [-8, 0, 0], [-32, -32, -32])
    """
    if int(stride) < 1:
        raise ValueError(f"Expected stride >= 1, got {stride!r}")
    if int(shifts_per_side) < 0:
        raise ValueError(f"Expected shifts_per_side >= 0, got {shifts_per_side!r}")
    rows = [np.zeros(3, dtype=np.int64)]
    for d in check_directions(directions):
        unit = np.zeros(3, dtype=np.int64)
        unit[[_AXIS[c] for c in d]] = 1
        for k in range(1, int(shifts_per_side) + 1):
            rows.append(unit * stride * k)
            rows.append(-unit * stride * k)
    return np.stack(rows)
