"""Report numbers against direct computations on their inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose

from bayespref.analysis import rates as analysis
from bayespref.posterior.fit import load_fit


def test_wilson_interval_matches_the_textbook_value():
    low, high = analysis.wilson_interval(np.array([7]), np.array([10]), mass=0.95)
    assert_allclose([low[0], high[0]], [0.3968, 0.8922], atol=1e-4)
    low, high = analysis.wilson_interval(np.array([0]), np.array([0]))
    assert np.isnan(low[0]) and np.isnan(high[0])


def test_position_win_rates_count_first_shown_wins_overall_and_within_datasets():
    comparisons = pd.DataFrame(
        {
            "task_a": list("abcdefgh"),
            "task_b": list("hgfedcba"),
            "choice": ["a", "a", "b", "refusal", "a", "b", "b", "unparsed"],
            "dataset_a": ["x", "x", "x", "x", "y", "y", "x", "y"],
            "dataset_b": ["x", "x", "y", "x", "y", "y", "y", "y"],
        }
    )
    rates = analysis.position_win_rates(analysis.choice_cells(comparisons)).set_index("group")
    assert rates.loc["all", ["wins", "trials"]].tolist() == [3, 6]
    assert rates.loc["x", ["wins", "trials"]].tolist() == [2, 2]  # cross-dataset trials left out
    assert rates.loc["y", ["wins", "trials"]].tolist() == [1, 2]
    assert_allclose(rates["rate"], rates["wins"] / rates["trials"])
    low, high = analysis.wilson_interval(rates["wins"], rates["trials"])
    assert_allclose(rates["low"], low) and (rates["low"] <= rates["rate"]).all()


def test_refusal_rates_and_their_correlation_with_utility(small_fit_dir):
    fit = load_fit(small_fit_dir)
    counts = fit.task_counts
    rates = analysis.refusal_rates(counts)
    expected = counts["n_refusal"] / (counts["n_trials"] + counts["n_refusal"])
    assert_allclose(rates["rate"], expected)
    assert rates["refusals"].sum() == counts["n_refusal"].sum() > 0

    order = pd.Index(fit.tasks["task_id"]).get_indexer(counts["task_id"])
    mu = fit.posterior["mu"].values.reshape(-1, len(fit.tasks)).T[order]
    summary = analysis.refusal_utility_correlation(rates["rate"], mu)
    direct = np.array([np.corrcoef(rates["rate"], column)[0, 1] for column in mu.T])
    assert summary["mean"] == pytest.approx(direct.mean())
    assert summary["low"] == pytest.approx(np.quantile(direct, 0.03))
    assert summary["high"] == pytest.approx(np.quantile(direct, 0.97))
    assert summary["n_tasks"] == len(counts)


def test_refusal_correlation_leaves_out_tasks_never_offered():
    rates = pd.Series([0.1, np.nan, 0.3, 0.2])
    draws = np.random.default_rng(0).normal(size=(4, 50))
    summary = analysis.refusal_utility_correlation(rates, draws)
    direct = [np.corrcoef([0.1, 0.3, 0.2], column[[0, 2, 3]])[0, 1] for column in draws.T]
    assert summary["n_tasks"] == 3
    assert summary["mean"] == pytest.approx(np.mean(direct))
