"""Which tasks meet: all pairs or a random near-regular graph, always shown in both orders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayespref.errors import DataError

CANDIDATES = 8  # draws per cycle or matching, the one adding the most new edges is kept


def _random_graph(n: int, degree: int, rng: np.random.Generator) -> set[tuple[int, int]]:
    """About `degree` partners per task, as unordered index pairs.

    Sparse: degree // 2 random Hamiltonian cycles (the first makes the graph connected), plus a
    random matching when the degree is odd; each is the best of CANDIDATES draws at avoiding
    edges already taken, and an edge drawn twice is kept once, so a few tasks may end with
    slightly fewer partners. Dense (degree above (n - 1) / 2): all pairs less a sparse random
    graph of degree n - 1 - degree, which keeps every task's count near `degree`.
    """
    if degree > (n - 1) / 2:
        removed = _random_graph(n, n - 1 - degree, rng) if degree < n - 1 else set()
        return {(i, j) for i in range(n) for j in range(i + 1, n)} - removed
    edges: set[tuple[int, int]] = set()

    def fresh(a: np.ndarray, b: np.ndarray) -> set[tuple[int, int]]:
        pairs = zip(a.tolist(), b.tolist(), strict=True)
        return {(min(i, j), max(i, j)) for i, j in pairs} - edges

    def cycle() -> set[tuple[int, int]]:
        order = rng.permutation(n)
        return fresh(order, np.roll(order, -1))

    def matching() -> set[tuple[int, int]]:
        order = rng.permutation(n)[: n - n % 2]
        return fresh(order[0::2], order[1::2])

    draws = [cycle] * (degree // 2) + [matching] * (degree % 2)
    for draw in draws:
        edges |= max((draw() for _ in range(CANDIDATES)), key=len)
    return edges


def pair_design(
    task_ids: Sequence[str], degree: int | None = None, samples: int = 1, seed: int = 0
) -> list[tuple[str, str, int]]:
    """Ordered trials (task shown first, task shown second, sample index), in a seeded order.

    Every unordered pair in the design appears in both orders, `samples` times each, so each task
    is shown first exactly as often as second with each partner, whatever the ids. `degree=None`
    (or a degree of at least n - 1) means all pairs.
    """
    ids = sorted(set(task_ids))
    if len(ids) != len(task_ids):
        raise DataError("the tasks for a design must have distinct task ids")
    n = len(ids)
    if n < 2:
        raise DataError(f"a pair design needs at least 2 tasks (got {n})")
    if samples < 1:
        raise DataError(f"samples must be at least 1 (got {samples})")
    if degree is not None and degree < 2:
        raise DataError(f"degree must be at least 2 for a connected design (got {degree})")
    rng = np.random.default_rng(seed)
    if degree is None or degree >= n - 1:
        edges = sorted((i, j) for i in range(n) for j in range(i + 1, n))
    else:
        edges = sorted(_random_graph(n, degree, rng))
    trials = [
        (ids[first], ids[second], sample)
        for i, j in edges
        for first, second in ((i, j), (j, i))
        for sample in range(samples)
    ]
    return [trials[k] for k in rng.permutation(len(trials))]


def rating_design(
    task_ids: Sequence[str], samples: int = 1, seed: int = 0
) -> list[tuple[str, int]]:
    """(task, sample index) for a rating protocol, every task `samples` times, in a seeded order."""
    if samples < 1:
        raise DataError(f"samples must be at least 1 (got {samples})")
    trials = [(task, sample) for task in sorted(set(task_ids)) for sample in range(samples)]
    return [trials[k] for k in np.random.default_rng(seed).permutation(len(trials))]
