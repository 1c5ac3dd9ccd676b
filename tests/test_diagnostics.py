"""The vectorised r_hat and bulk ESS give arviz's numbers, edge cases included."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from arviz_stats.base import array_stats
from scipy import stats

from bayespref.checks.convergence import (
    THRESHOLDS,
    TrustCheck,
    convergence,
    failing_quantities,
)
from bayespref.checks.rank_diagnostics import average_ranks, rhat_and_bulk_ess


def _chains(chains: int, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Quantities shaped (chain, draw, quantity): AR(1) chains from anti-correlated to sticky,
    chains offset from each other, and the awkward ones: a constant, a binary quantity, rounded
    draws (many ties), and one NaN."""
    n_quantities = 30
    values = np.empty((chains, draws, n_quantities))
    for column in range(n_quantities):
        persistence = rng.uniform(-0.9, 0.99)
        noise = rng.normal(size=(chains, draws))
        for t in range(1, draws):
            noise[:, t] += persistence * noise[:, t - 1]
        values[:, :, column] = noise + rng.normal(size=(chains, 1)) * rng.uniform(0, 2)
    values[:, :, 0] = 3.0
    values[:, :, 1] = rng.integers(0, 2, size=(chains, draws))
    values[:, :, 2] = np.round(values[:, :, 2])
    values[0, 1, 3] = np.nan
    return values


@pytest.mark.parametrize("chains, draws", [(4, 1000), (4, 101), (2, 7), (3, 4), (1, 50), (2, 3)])
def test_rhat_and_bulk_ess_equal_arviz(chains: int, draws: int) -> None:
    values = _chains(chains, draws, np.random.default_rng(chains * draws))
    r_hat, ess = rhat_and_bulk_ess(values)
    by_quantity = np.moveaxis(values, 2, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_r_hat = array_stats.rhat(by_quantity)
        expected_ess = array_stats.ess(by_quantity, method="bulk")
    np.testing.assert_allclose(r_hat, expected_r_hat, rtol=1e-10, equal_nan=True)
    np.testing.assert_allclose(ess, expected_ess, rtol=1e-10, equal_nan=True)


def test_average_ranks_equal_scipys_ties_constants_and_nans_included() -> None:
    rows = np.random.default_rng(3).normal(size=(6, 200))
    rows[0, 50:90] = rows[0, 7]  # one long tie
    rows[1] = np.round(rows[1])  # many ties
    rows[2] = 1.5  # a constant
    rows[3, 11] = np.nan
    rows[4, -1] = rows[4, 0]  # a tie of the first and last draws
    expected = stats.rankdata(rows, axis=1)
    np.testing.assert_array_equal(average_ranks(rows), expected)
    assert np.isnan(expected[3]).all()
    no_ties = rows[5:]
    np.testing.assert_array_equal(average_ranks(no_ties), stats.rankdata(no_ties, axis=1))


def test_convergence_keeps_dims_and_coords_and_skips_internal_variables() -> None:
    rng = np.random.default_rng(0)
    posterior = xr.Dataset(
        {
            "mu": (("chain", "draw", "task"), rng.normal(size=(2, 40, 3))),
            "position_bias": (("chain", "draw"), rng.normal(size=(2, 40))),
            "mu_offset": (("chain", "draw", "task"), rng.normal(size=(2, 40, 3))),
        },
        coords={"task": ["t1", "t2", "t3"]},
    )
    r_hat, ess = convergence(xr.DataTree.from_dict({"posterior": posterior}))
    assert set(r_hat.data_vars) == set(ess.data_vars) == {"mu", "position_bias"}
    assert list(ess["mu"]["task"].values) == ["t1", "t2", "t3"]
    assert ess["position_bias"].shape == ()
    expected = array_stats.ess(posterior["mu"].transpose("task", "chain", "draw").values)
    np.testing.assert_allclose(ess["mu"].values, expected, rtol=1e-10)


def _tree(mu: np.ndarray) -> xr.DataTree:
    """A posterior with `mu` shaped (chain, draw, task)."""
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"mu": (("chain", "draw", "task"), mu)})})


def test_trust_check_gives_the_full_checks_verdict_and_skips_it_while_a_failure_persists() -> None:
    rng = np.random.default_rng(3)
    mixed = rng.normal(size=(4, 500, 20))
    stuck = mixed.copy()
    stuck[:, :, 7] += np.arange(4)[:, None]  # chains that disagree about task 7 alone
    check = TrustCheck()
    first = _tree(stuck[:, :300])
    assert not check(first)
    assert check.failing == [("mu", 7)]
    # Task 7 still fails: the verdict comes without a full check (the last one is kept).
    assert not check(_tree(stuck))
    assert check.last[0] is first
    # Once it passes, the full check runs and agrees with the thresholds on every quantity.
    passing = _tree(mixed)
    assert check(passing)
    assert check.last[0] is passing and check.failing == []
    r_hat, ess = convergence(passing)
    assert r_hat["mu"].max() <= THRESHOLDS["r_hat"] and ess["mu"].min() >= THRESHOLDS["ess_bulk"]


def test_failing_quantities_come_worst_first_across_variables() -> None:
    r_hat = xr.Dataset({"mu": ("task", [1.0, 1.05, 1.02]), "sigma": ("dataset", [1.2, np.nan])})
    ess = xr.Dataset({"mu": ("task", [1000.0, 800.0, 390.0]), "sigma": ("dataset", [900.0, 40.0])})
    # r_hat excess 20x the threshold's (sigma[0]), ESS 10x short (sigma[1]), 5x, 2x; mu[0] passes.
    assert failing_quantities(r_hat, ess) == [("sigma", 0), ("sigma", 1), ("mu", 1), ("mu", 2)]
