"""The patch-sink protocol: how an extraction job hands over what it cuts.

:class:`ctpatch.store.writer.BlockSink` (compressed chunks for the single writer) and
:class:`MemorySink` (a few patches regenerated in memory, for ``verify``, ``explain`` and the plan)
implement it.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np


class PatchSink(Protocol):
    """Where an extraction job puts its patches and provenance rows (the patch-sink protocol).

    A job (``extract_luna.Job``, ``extract_ldct.Job``) calls, per patch and in its canonical order:

    * ``slot(name)`` -> a writable array of the dataset's patch shape and dtype, which the job fills
      in place, then ``commit(name)``; or ``add(name, patch)`` with an array cast to the dataset's
      dtype (as ``astype`` would).  ``name`` is one of the job's datasets (``Job.specs()``).
    * ``add_row(table, row)`` with a tuple of the provenance table's dtype, after the patches the
      row describes.

    Implementations may keep the array of a ``slot`` until the next call for that dataset, so a job
    never holds on to it.  Nothing else is required (no flush, no close): the owner of the sink
    finishes it.
    """

    def slot(self, name: str) -> np.ndarray: ...

    def commit(self, name: str) -> None: ...

    def add(self, name: str, patch: np.ndarray) -> None: ...

    def add_row(self, table: str, row: tuple) -> None: ...


class MemorySink:
    """A :class:`PatchSink` keeping everything in memory, cast to the datasets' dtypes (for re-running a
    few patches: ``verify``, tests).  ``datasets``: name -> (patch shape, dtype), as ``Job.specs().datasets``.

    ``patches[name]`` lists the patches in order, ``rows[table]`` the provenance rows.
    """

    def __init__(self, datasets: dict):
        self.datasets = {n: (tuple(shape), np.dtype(dt)) for n, (shape, dt) in datasets.items()}
        self.patches: dict[str, list] = {n: [] for n in self.datasets}
        self.rows: dict[str, list] = {}

    def slot(self, name: str) -> np.ndarray:
        shape, dtype = self.datasets[name]
        self._slot = np.empty(shape, dtype=dtype)
        return self._slot

    def commit(self, name: str) -> None:
        self.patches[name].append(self._slot)

    def add(self, name: str, patch) -> None:
        shape, dtype = self.datasets[name]
        self.patches[name].append(np.asarray(patch).astype(dtype, copy=True).reshape(shape))

    def add_row(self, table: str, row) -> None:
        self.rows.setdefault(table, []).append(row)
