from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayespref as bp
from bayespref.analysis.selection import (
    _candidates,
    _codes,
    _reference,
    default_cap,
    information,
    select,
)
from bayespref.cli.app import app
from bayespref.errors import SelectError

STRATEGIES = ("posterior", "random", "reference")


@pytest.fixture(scope="module")
def sparse_fit_dir(tmp_path_factory):
    """16 tasks compared sparsely, so that most pairs are new."""
    simulation = bp.simulate(n_tasks=16, n_datasets=2, n_comparisons=60, repeats=2, seed=5)
    out = tmp_path_factory.mktemp("select") / "fit"
    bp.fit(
        simulation.comparisons,
        simulation.tasks,
        settings=bp.SamplerSettings(chains=1, draws=200, tune=200, seed=0),
        out=out,
        progressbar=False,
        log_likelihood=False,
    )
    return out


@pytest.fixture(scope="module")
def sparse_fit(sparse_fit_dir):
    return bp.load_fit(sparse_fit_dir)


def unordered(pairs: pd.DataFrame) -> list[tuple[str, str]]:
    return [tuple(sorted(p)) for p in zip(pairs["task_a"], pairs["task_b"], strict=True)]


def measured(fit: bp.Fit) -> set[tuple[str, str]]:
    ids = fit.tasks["task_id"].to_numpy()
    data = fit.idata["constant_data"]
    a, b = ids[data["task_a_idx"].values], ids[data["task_b_idx"].values]
    return {tuple(sorted(p)) for p in zip(a, b, strict=True)}


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_selection_is_deterministic_for_a_seed(sparse_fit, strategy):
    first = select(sparse_fit, 8, strategy, seed=3)
    again = select(sparse_fit, 8, strategy, seed=3)
    pd.testing.assert_frame_equal(first, again)
    if strategy == "random":
        assert not first.equals(select(sparse_fit, 8, strategy, seed=4))


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_new_pairs_in_both_orders_never_twice_and_under_the_cap(sparse_fit, strategy):
    exclude = pd.DataFrame({"task_a": ["t00000", "t00001"], "task_b": ["t00002", "t00003"]})
    pairs = select(sparse_fit, 10, strategy, seed=0, exclude=exclude)
    assert len(pairs) == 20 and list(pairs.columns) == ["task_a", "task_b", "pair", "score"]
    once = unordered(pairs)[::2]
    assert len(set(once)) == 10
    assert not set(once) & (measured(sparse_fit) | set(unordered(exclude)))
    orders = set(zip(pairs["task_a"], pairs["task_b"], strict=True))
    assert all((b, a) in orders for a, b in orders)
    assert (pairs.groupby("pair").size() == 2).all()
    cap = default_cap(10, 16)
    assert cap == 3 and pairs.attrs["max_per_task"] == cap
    counts = pd.Series([task for pair in once for task in pair]).value_counts()
    assert counts.max() <= cap
    tight = unordered(select(sparse_fit, 8, strategy, seed=0, max_per_task=1))[::2]
    assert pd.Series([task for pair in tight for task in pair]).value_counts().max() == 1


def test_posterior_takes_the_most_informative_pairs_spreading_first(sparse_fit):
    n = len(sparse_fit.tasks)
    pairs = select(sparse_fit, 6, "posterior", max_per_task=n)
    first, second = np.triu_indices(n, 1)
    new = ~np.isin(_codes(first, second, n), _codes(*_index_pairs(sparse_fit), n))
    first, second = first[new], second[new]
    scores = information(sparse_fit, first, second)
    assert np.all((scores >= 0) & (scores <= np.log(2)))
    used, expected = set(), []
    for k in np.argsort(-scores):  # best first, each task once while that fills the batch
        if len(expected) < 6 and not {first[k], second[k]} & used:
            used |= {first[k], second[k]}
            expected.append(scores[k])
    np.testing.assert_allclose(pairs["score"].to_numpy()[::2], expected)


def _index_pairs(fit: bp.Fit) -> tuple[np.ndarray, np.ndarray]:
    data = fit.idata["constant_data"]
    return data["task_a_idx"].values, data["task_b_idx"].values


def test_information_is_zero_when_every_draw_agrees(sparse_fit):
    ranked = np.argsort(sparse_fit.utilities["mu_mean"].to_numpy())
    far = information(sparse_fit, ranked[:1], ranked[-1:])
    near = information(sparse_fit, ranked[7:8], ranked[8:9])
    assert far[0] < near[0]
    idata = sparse_fit.idata.copy()
    posterior = idata["posterior"].to_dataset()
    idata["posterior"] = posterior.map(lambda v: v.mean(("chain", "draw")).broadcast_like(v))
    agreed = replace(sparse_fit, idata=idata)
    np.testing.assert_allclose(information(agreed, ranked[:8], ranked[8:]), 0, atol=1e-12)


def test_reference_heuristic_widens_until_enough_pairs_qualify():
    n = 40
    first, second = np.triu_indices(n, 1)
    mu = np.arange(n, dtype=float)
    degree = np.zeros(n)
    degree[:20] = 10  # the first 20 tasks were compared often
    distance = np.abs(mu[first] - mu[second])
    summed = degree[first] + degree[second]

    def within(chosen, share):
        return np.all(
            (distance[chosen] <= np.quantile(distance, share))
            & (summed[chosen] <= np.quantile(summed, share))
        )

    rng = np.random.default_rng(0)
    few = _reference(first, second, mu, degree, 10, n, rng)
    assert len(few) == 10 and within(few, 0.3)
    many = _reference(first, second, mu, degree, 200, n, rng)
    assert len(many) == 200 and not within(many, 0.3) and within(many, 0.45 * 1.5)
    capped = _reference(first, second, mu, degree, 20, 1, rng)
    assert len(capped) == 20  # the cap forces widening beyond the closest pairs


def test_candidates_are_sampled_and_seeded_beyond_the_limit():
    n = 200
    mu = np.random.default_rng(1).normal(size=n)
    rng = np.random.default_rng
    assert len(_candidates(20, mu[:20], "posterior", 1000, rng(0))) == 190  # all pairs
    sampled = _candidates(n, mu, "posterior", 2000, rng(0))
    np.testing.assert_array_equal(sampled, _candidates(n, mu, "posterior", 2000, rng(0)))
    assert 1500 <= len(sampled) <= 2000 and np.all(sampled // n < sampled % n)
    ranked = np.argsort(mu)
    neighbours = _codes(ranked[:-1], ranked[1:], n)
    assert np.isin(neighbours, sampled).all()
    uniform = _candidates(n, mu, "random", 2000, rng(0))
    assert len(uniform) == 2000 and not np.isin(neighbours, uniform).all()


def test_select_with_sampled_candidates(sparse_fit):
    pairs = select(sparse_fit, 5, "posterior", candidates=40, seed=2)
    assert len(pairs) == 10
    pd.testing.assert_frame_equal(pairs, select(sparse_fit, 5, candidates=40, seed=2))


def test_errors_and_exhaustion(sparse_fit):
    with pytest.raises(SelectError, match="unknown strategy 'best'"):
        select(sparse_fit, 3, "best")
    with pytest.raises(SelectError, match="must be positive"):
        select(sparse_fit, 0)
    with pytest.raises(SelectError, match="max_per_task must be positive"):
        select(sparse_fit, 3, max_per_task=0)
    every = select(sparse_fit, 500, "random", max_per_task=16)
    assert len(every) // 2 == 16 * 15 // 2 - len(measured(sparse_fit))


def test_cli_select_end_to_end(sparse_fit_dir, tmp_path):
    runner = CliRunner()
    out = tmp_path / "pairs.csv"
    exclude = tmp_path / "exclude.csv"
    exclude.write_text("task_a,task_b\nt00004,t00009\n")
    args = ["select", str(sparse_fit_dir), "--budget", "4", "--out", str(out), "--seed", "1"]
    result = runner.invoke(app, [*args, "--exclude", str(exclude)])
    assert result.exit_code == 0, result.output
    assert "4 pairs in both orders" in result.output
    pairs = pd.read_csv(out)
    assert len(pairs) == 8 and ("t00004", "t00009") not in unordered(pairs)
    result = runner.invoke(app, [*args, "--strategy", "best"])
    assert result.exit_code == 2 and "unknown strategy 'best'" in result.output
    exclude.write_text("first,second\nt00004,t00009\n")
    result = runner.invoke(app, [*args, "--exclude", str(exclude)])
    assert result.exit_code == 2 and "exclude.csv', column 'task_a'" in result.output
    every = ["select", str(sparse_fit_dir), "--budget", "200", "--out", str(out)]
    result = runner.invoke(app, [*every, "--strategy", "random"])
    assert result.exit_code == 0 and "could be chosen" in result.output


def test_fit_with_conditions_selects_in_the_reference_condition():
    simulation = bp.simulate(
        n_tasks=12, n_datasets=2, n_comparisons=60, condition_shifts=((0.5, -0.5),), seed=2
    )
    fit = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        model="conditions",
        settings=bp.SamplerSettings(chains=1, draws=100, tune=100, seed=0),
        progressbar=False,
        log_likelihood=False,
    )
    pairs = select(fit, 3)
    assert list(pairs.columns) == ["task_a", "task_b", "condition", "pair", "score"]
    assert (pairs["condition"] == "default").all() and len(pairs) == 6
    expected = information(fit, *_index_of(fit, pairs.iloc[:1]))
    np.testing.assert_allclose(pairs["score"].iloc[0], expected[0])


def _index_of(fit: bp.Fit, pairs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    index = pd.Series(np.arange(len(fit.tasks)), index=fit.tasks["task_id"].to_numpy())
    return index[pairs["task_a"]].to_numpy(), index[pairs["task_b"]].to_numpy()
