"""Which tasks meet: all pairs or a random near-regular graph, always shown in both orders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bayespref.data import DataError


def _random_graph(n: int, degree: int, rng: np.random.Generator) -> set[tuple[int, int]]:
    """About `degree` partners per task: degree // 2 random Hamiltonian cycles (the first makes
    the graph connected), plus a random matching when the degree is odd. An edge drawn twice is
    kept once, so a few tasks may end with slightly fewer partners."""
    edges: set[tuple[int, int]] = set()

    def add(a: np.ndarray, b: np.ndarray) -> None:
        edges.update((min(i, j), max(i, j)) for i, j in zip(a.tolist(), b.tolist(), strict=True))

    for _ in range(degree // 2):
        order = rng.permutation(n)
        add(order, np.roll(order, -1))
    if degree % 2:
        order = rng.permutation(n)[: n - n % 2]
        add(order[0::2], order[1::2])
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
