"""The blocks of an extraction: units of work cut into runs of patches, and which rank computes each.

A **unit** is a LUNA16 scan or an LDCT slice pair; a **span** is a run of at most
:data:`BLOCK_PATCHES` of a unit's items; :func:`owners` deals the blocks to the ranks (rank 0, which
also writes, takes a little less).  Pure functions: no MPI, no files.
"""

from __future__ import annotations

from dataclasses import dataclass

#: patches per block: the unit of work a rank computes and sends (32 LUNA16 patches of 68³ float32 are 40 MB
#: before compression)
BLOCK_PATCHES = 32


#: blocks a rank may have computed and not yet handed to the writer
AHEAD = 2


#: rank 0's placing of the chunks it receives, relative to computing them (the per-stage figures are in
#: ``benchmarks/README.md``): rank 0 computes fewer blocks
WRITE_SHARE = 0.075


def owners(n: int, size: int, write_share: float = WRITE_SHARE) -> list[int]:
    """The rank computing each of ``n`` blocks: a smooth weighted round-robin (deterministic) in which rank 0,
    which also writes every block, takes ``(1 + w) / size - w`` of them and the other ranks share the rest.

    >>> owners(8, 2)
    [1, 0, 1, 0, 1, 0, 1, 0]
    >>> [owners(1000, 2).count(r) for r in range(2)]
    [462, 538]
    >>> [owners(1000, 4).count(r) for r in range(4)]
    [194, 269, 269, 268]
    >>> owners(3, 1)
    [0, 0, 0]
    """
    if size == 1:
        return [0] * n
    lead = max(0.0, (1 + write_share) / size - write_share)
    weights = [lead] + [(1 - lead) / (size - 1)] * (size - 1)
    credit, out = [0.0] * size, []
    for _ in range(n):
        credit = [c + w for c, w in zip(credit, weights)]
        r = max(range(size), key=lambda k: (credit[k], -k))
        credit[r] -= 1.0
        out.append(r)
    return out


@dataclass(frozen=True)
class Unit:
    """One unit of extraction work: a LUNA16 scan or an LDCT slice pair.

    ``key`` names it (series uid; ``patient/input file``) and keys its random draws; ``index`` is
    its place in the canonical order (``scan_index``, ``pair_index``); ``cost`` its relative cost;
    ``patches`` the number of output items it gives when known before cutting (``None``: known
    after :meth:`count`), an item being one patch row with its provenance row.
    """

    key: str
    index: int
    cost: float = 1.0
    patches: int | None = None


@dataclass(frozen=True)
class Span:
    """Items ``[start, stop)`` of unit ``unit`` (``stop`` ``None``: to the end)."""

    unit: int
    start: int = 0
    stop: int | None = None


def spans(units: list[Unit], per_block: int = BLOCK_PATCHES, splittable: bool = True) -> list[Span]:
    """The blocks of work in canonical order: each unit cut into runs of ``per_block`` items.

    >>> [(s.unit, s.start, s.stop) for s in spans([Unit("a", 0, patches=5), Unit("b", 1, patches=0)], 2)]
    [(0, 0, 2), (0, 2, 4), (0, 4, 5), (1, 0, 0)]
    >>> [(s.unit, s.start, s.stop) for s in spans([Unit("a", 0)], 2, splittable=False)]
    [(0, 0, None)]
    """
    out = []
    for i, u in enumerate(units):
        if not splittable or u.patches is None:
            out.append(Span(i))
            continue
        out += [Span(i, a, min(a + per_block, u.patches)) for a in range(0, u.patches, per_block)] or [Span(i, 0, 0)]
    return out


def assign(costs: list[float], ranks: int) -> list[list[int]]:
    """Longest-processing-time assignment of unit indices to ranks (deterministic); ``plan`` uses it to
    estimate a run's makespan (the extraction itself deals blocks round-robin (:func:`owners`), which balances at
    least as well: blocks are small and of equal size).

    >>> assign([5, 1, 4, 2], 2)
    [[0, 1], [2, 3]]
    """
    import heapq

    if ranks < 1:
        raise ValueError(f"Expected at least one rank, got {ranks!r}")
    heap = [(0.0, r) for r in range(ranks)]
    out: list[list[int]] = [[] for _ in range(ranks)]
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, r = heapq.heappop(heap)
        out[r].append(i)
        heapq.heappush(heap, (load + float(costs[i]), r))
    return out
