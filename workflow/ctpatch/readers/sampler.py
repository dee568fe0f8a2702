"""A class-balanced sampler: positions of a dataset drawn with a chosen share per kind, reproducibly.

``BalancedSampler(ds, {"nodule": 1, "non_nodule": 1}, seed=0)`` over a mixed-kind
:class:`~ctpatch.readers.dataset.PatchDataset` yields ``num_samples`` positions per epoch of which the
kinds make up the given ratio (1 : 1 here, whatever the file's 1 : 3), for
``torch.utils.data.DataLoader(ds, sampler=...)`` (any iterable with a length is a sampler there;
torch is not imported).  Deterministic: the positions of an epoch depend only on the dataset, the
ratio, ``num_samples``, ``seed`` and the epoch (:meth:`BalancedSampler.set_epoch`, as
``DistributedSampler`` has).
"""

from __future__ import annotations

from typing import Iterator, Mapping

import numpy as np

from ctpatch.core.rng import keyed_rng


def kind_counts(ratio: Mapping[str, float], total: int) -> dict[str, int]:
    """Split ``total`` draws between kinds in proportion to ``ratio`` (largest remainders, ties in order).

    >>> kind_counts({"nodule": 1, "non_nodule": 3}, 10)
    {'nodule': 3, 'non_nodule': 7}
    >>> kind_counts({"nodule": 1, "non_nodule": 1}, 7)
    {'nodule': 4, 'non_nodule': 3}
    """
    weights = np.asarray([float(w) for w in ratio.values()])
    exact = weights / weights.sum() * int(total)
    counts = np.floor(exact).astype(np.int64)
    rest = int(total) - int(counts.sum())
    order = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[:rest]:
        counts[i] += 1
    return {k: int(c) for k, c in zip(ratio, counts)}


def draw(pool: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` positions from ``pool``: whole shuffled passes over it, then a part of one more (so each
    position is drawn ``n // len(pool)`` or one more times)."""
    passes = [rng.permutation(pool) for _ in range(-(-n // len(pool)))] if n else []
    return np.concatenate(passes)[:n] if passes else np.zeros(0, dtype=np.int64)


class BalancedSampler:
    """Positions of ``dataset`` with the kinds in the proportion ``ratio``.

    Parameters
    ----------
    dataset : PatchDataset
        Any dataset with ``kinds`` and ``positions(kind)`` (a :class:`~ctpatch.readers.dataset.PatchDataset`,
        also one of a fold).
    ratio : mapping kind -> weight
        E.g. ``{"nodule": 1, "non_nodule": 2}``; every kind named must be in the dataset and have
        patches, weights are > 0.
    num_samples : int, optional
        Positions per epoch; default ``len(dataset)``.
    seed : int
        With the epoch, decides every draw (``keyed_rng(seed, "balanced", epoch)``).

    Within a kind, positions are drawn without replacement until the kind is used up, then anew
    (a rare kind repeats, a common one is subsampled); the kinds are interleaved in a random order.
    """

    def __init__(self, dataset, ratio: Mapping[str, float], num_samples: int | None = None, seed: int = 0):
        if not ratio:
            raise ValueError("Expected a ratio naming at least one kind, got none")
        self.pools = {}
        for kind, weight in ratio.items():
            if not float(weight) > 0:
                raise ValueError(f"Expected a weight > 0 for kind {kind!r}, got {weight!r}")
            if kind not in dataset.kinds:
                raise ValueError(f"Expected kinds of the dataset {list(dataset.kinds)}, got {kind!r}")
            pool = dataset.positions(kind)
            if not len(pool):
                raise ValueError(f"The dataset has no {kind} patches to draw")
            self.pools[kind] = pool
        self.ratio = dict(ratio)
        self.num_samples = len(dataset) if num_samples is None else int(num_samples)
        if self.num_samples < 1:
            raise ValueError(f"Expected num_samples >= 1, got {num_samples!r}")
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Draw the positions of ``epoch`` next (call before each epoch for new draws)."""
        self.epoch = int(epoch)

    def indices(self) -> np.ndarray:
        """This epoch's positions, in the order they are yielded."""
        rng = keyed_rng(self.seed, "balanced", self.epoch)
        counts = kind_counts(self.ratio, self.num_samples)
        chosen = np.concatenate([draw(self.pools[k], counts[k], rng) for k in self.ratio])
        return chosen[rng.permutation(len(chosen))]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices().tolist())

    def __len__(self) -> int:
        return self.num_samples
