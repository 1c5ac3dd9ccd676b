from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bayespref.collect.design import pair_design, rating_design
from bayespref.errors import DataError

IDS = [f"task{i:02d}" for i in range(12)]


def test_default_design_is_every_pair_in_both_orders():
    trials = pair_design(IDS, samples=2, seed=3)
    assert len(trials) == 12 * 11 * 2
    counts = Counter(trials)
    assert set(counts.values()) == {1}
    ordered = Counter((a, b) for a, b, _ in trials)
    assert ordered == {(a, b): 2 for a in IDS for b in IDS if a != b}


def test_same_seed_same_order_and_other_seed_other_order():
    assert pair_design(IDS, degree=4, seed=1) == pair_design(IDS, degree=4, seed=1)
    assert pair_design(IDS, seed=1) != pair_design(IDS, seed=2)
    assert sorted(pair_design(IDS, seed=1)) == sorted(pair_design(IDS, seed=2))


def test_design_does_not_depend_on_the_order_tasks_are_given_in():
    assert pair_design(IDS, degree=4, seed=5) == pair_design(IDS[::-1], degree=4, seed=5)


@pytest.mark.parametrize(("n", "degree"), [(40, 2), (40, 3), (40, 6), (60, 40)])
def test_random_graph_is_connected_near_regular_and_shown_both_ways(n, degree):
    ids = [f"t{i}" for i in range(n)]
    trials = pair_design(ids, degree=degree, samples=3, seed=7)
    ordered = Counter((a, b) for a, b, _ in trials)
    assert all(ordered[(b, a)] == count == 3 for (a, b), count in ordered.items())
    partners = Counter(a for a, _ in ordered)
    assert set(partners) == set(ids)
    assert abs(np.mean(list(partners.values())) - degree) <= max(0.5, 0.1 * degree)
    assert min(partners.values()) >= degree - 2 and max(partners.values()) <= 1.15 * degree
    index = {task: i for i, task in enumerate(ids)}
    rows, cols = zip(*[(index[a], index[b]) for a, b in ordered], strict=True)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    assert connected_components(graph, directed=False)[0] == 1


def test_position_is_never_confounded_with_task_ids():
    # Ids chosen so that id order, number order and dataset order all differ.
    ids = ["zeta", "alpha", "m10", "m9", "b-2", "B-1", "task_100", "task_20"]
    for degree in (None, 3):
        trials = pair_design(ids, degree=degree, samples=2, seed=11)
        first = Counter(a for a, _, _ in trials)
        second = Counter(b for _, b, _ in trials)
        assert first == second
        assert sum(a < b for a, b, _ in trials) * 2 == len(trials)
        # The run order does not put one orientation of a pair before the other systematically.
        halves = [trials[: len(trials) // 2], trials[len(trials) // 2 :]]
        assert abs(sum(a < b for a, b, _ in halves[0]) - len(halves[0]) / 2) < len(trials) / 6


def test_degree_at_least_n_minus_1_means_all_pairs():
    assert sorted(pair_design(IDS[:5], degree=4)) == sorted(pair_design(IDS[:5]))


@pytest.mark.parametrize(
    ("ids", "degree", "samples", "message"),
    [
        (["x"], None, 1, "at least 2 tasks"),
        (["x", "x", "y"], None, 1, "distinct task ids"),
        (IDS, 1, 1, "degree must be at least 2"),
        (IDS, None, 0, "samples must be at least 1"),
    ],
)
def test_bad_designs_are_errors(ids, degree, samples, message):
    with pytest.raises(DataError, match=message):
        pair_design(ids, degree=degree, samples=samples)


def test_rating_design_shows_every_task_samples_times():
    trials = rating_design(IDS, samples=3, seed=0)
    assert Counter(trials) == {(task, s): 1 for task in IDS for s in range(3)}
    assert trials == rating_design(IDS, samples=3, seed=0) != sorted(trials)
