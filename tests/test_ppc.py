"""Posterior predictive replicates against exact moments, on hand-built fits whose posterior is
one fixed point repeated: replicated cells must vary as the model says its cells vary."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from numpy.polynomial.hermite_e import hermegauss
from scipy.special import betaln, ndtr

from bayespref.analysis.prediction import replicate_choice_draws
from bayespref.checks.ppc import posterior_predictive_checks
from bayespref.model.spec import ModelSpec
from bayespref.posterior.fit import Fit


def _fixed_fit(spec, task_dataset, variables, cells, draws):
    """A fit whose every posterior draw is `variables` (name: (dims, value)), over `cells`
    (a_idx, b_idx, n, k)."""
    posterior = xr.Dataset(
        {
            name: (("chain", "draw", *dims), np.broadcast_to(value, (1, draws, *np.shape(value))))
            for name, (dims, value) in variables.items()
        }
    )
    a, b, n, k = (np.asarray(column) for column in zip(*cells, strict=True))
    idata = xr.DataTree.from_dict(
        {
            "posterior": posterior,
            "constant_data": xr.Dataset(
                {"task_a_idx": ("cell", a), "task_b_idx": ("cell", b), "n_trials": ("cell", n)}
            ),
            "observed_data": xr.Dataset({"first_chosen": ("cell", k)}),
        }
    )
    datasets = [f"d{i}" for i in range(max(task_dataset) + 1)]
    tasks = pd.DataFrame(
        {
            "task_id": [f"t{i}" for i in range(len(task_dataset))],
            "dataset": [datasets[d] for d in task_dataset],
            "dataset_idx": task_dataset,
        }
    )
    empty = pd.DataFrame()
    return Fit(idata, spec, tasks, datasets, ["default"], empty, empty, None, empty)


def _replicates(fit, seed=0):
    n = fit.cells["n"].to_numpy()
    rng = np.random.default_rng(seed)
    [(rows, p)] = replicate_choice_draws(fit, fit.cells, None, rng)
    assert rows == slice(0, 4096)
    return rng.binomial(n[:, None], p)


@pytest.mark.parametrize("by_task", [False, True], ids=["by-dataset", "by-task"])
def test_beta_binomial_replicates_have_the_beta_binomial_variance(by_task):
    """Var k = n P (1 - P) (1 + (n - 1) / (kappa + 1)), kappa the geometric mean of the two
    tasks' concentrations (their datasets', or their own); binomial cells at P would have 1.8 to
    4.2 times less."""
    mu = np.array([0.5, -0.5, 1.0, 0.0])
    kappa_task = np.array([0.25, 0.25, 4.0, 4.0])
    variables = {
        "mu": (("task",), mu),
        "sigma_dataset": (("dataset",), np.ones(2)),
        "position_bias_dataset": (("dataset",), np.zeros(2)),
        # Under by_task the dataset levels are decoys: the tasks' own concentrations decide.
        "concentration_dataset": (("dataset",), np.array([0.25, 4.0]) * np.exp(3 * by_task)),
    }
    if by_task:
        variables["concentration_task"] = (("task",), kappa_task)
    cells = [(0, 1, 5, 0), (2, 3, 5, 0), (0, 2, 4, 0), (3, 1, 3, 0)]
    spec = ModelSpec(overdispersion="beta-binomial-by-task" if by_task else "beta-binomial")
    k = _replicates(_fixed_fit(spec, [0, 0, 1, 1], variables, cells, 20_000))
    a, b, n, _ = (np.array(column) for column in zip(*cells, strict=True))
    p = ndtr((mu[a] - mu[b]) / np.sqrt(2))
    kappa = np.sqrt(kappa_task[a] * kappa_task[b])
    np.testing.assert_allclose(kappa, [0.25, 4.0, 1.0, 1.0])
    binomial = n * p * (1 - p)
    expected = binomial * (1 + (n - 1) / (kappa + 1))
    np.testing.assert_allclose(k.mean(axis=1), n * p, rtol=0.02)
    np.testing.assert_allclose(k.var(axis=1), expected, rtol=0.05)
    assert (expected > 1.7 * binomial).all()


def test_pair_effect_replicates_share_a_new_effect_between_a_pairs_cells():
    """A fresh effect e ~ Normal(0, pair_sd) per pair, in noise units, shared by the pair's two
    orders: the first-shown task's P is Phi(z + e / sqrt 2) in one order and Phi(-z - e / sqrt 2)
    in the other, so a task's wins covary across its pair's cells by n^2 Var P and not across
    pairs; each cell's variance is n E[P (1 - P)] + n^2 Var P."""
    mu = np.array([0.6, 0.0, 0.3, -0.3])
    variables = {"mu": (("task",), mu), "pair_sd": ((), 2.0)}
    cells = [(0, 1, 5, 0), (1, 0, 5, 0), (2, 3, 5, 0)]
    spec = ModelSpec(overdispersion="pair", position="global")
    k = _replicates(_fixed_fit(spec, [0, 0, 0, 0], variables, cells, 20_000))
    nodes, weights = hermegauss(60)
    weights = weights / weights.sum()
    z = 0.6 / np.sqrt(2)
    p = ndtr(z + np.sqrt(2) * nodes)  # effect sd 2 over the cell's noise sd sqrt 2
    mean, var = weights @ p, weights @ p**2 - (weights @ p) ** 2
    np.testing.assert_allclose(k[0].mean(), 5 * mean, rtol=0.02)
    np.testing.assert_allclose(k[1].mean(), 5 * (1 - mean), rtol=0.02)
    within = 5 * (weights @ (p * (1 - p))) + 25 * var
    np.testing.assert_allclose(k[:2].var(axis=1), within, rtol=0.05)
    assert within > 2 * 5 * mean * (1 - mean)  # binomial cells at the mean P vary half as much
    shared = np.cov(k[0], 5 - k[1])[0, 1]
    assert shared == pytest.approx(25 * var, rel=0.05)
    assert abs(np.corrcoef(k[0], k[2])[0, 1]) < 0.03


def test_unanimous_cells_show_whether_binomial_cells_are_adequate():
    """Cells of 5 repeats at P = 1/2 that are 90% unanimous: beta-binomial cells with kappa 0.1
    replicate 2 B(5.05, 0.05) / B(0.05, 0.05) of them unanimous, binomial ones 2 / 32."""
    task_dataset = [0] * 6 + [1] * 6
    rng = np.random.default_rng(3)
    pairs = [(a, b) for a in range(12) for b in range(a + 1, 12) if (a + b) % 3 == 0]
    unanimous = rng.random(len(pairs)) < 0.9
    cells = [
        (a, b, 5, (0 if rng.random() < 0.5 else 5) if same else 2)
        for (a, b), same in zip(pairs, unanimous, strict=True)
    ]
    cells.append((0, 5, 1, 1))  # one trial: not a repeat
    variables = {
        "mu": (("task",), np.zeros(12)),
        "sigma_dataset": (("dataset",), np.ones(2)),
        "position_bias_dataset": (("dataset",), np.zeros(2)),
        "concentration_dataset": (("dataset",), np.array([0.1, 0.1])),
    }
    exact = 2 * np.exp(betaln(5.05, 0.05) - betaln(0.05, 0.05))
    for overdispersion, replicated in (("beta-binomial", exact), ("none", 2 / 32)):
        spec = ModelSpec(overdispersion=overdispersion)
        fit = _fixed_fit(spec, task_dataset, variables, cells, 400)
        table = posterior_predictive_checks(fit, fit.cells).set_index("statistic")
        for index in (0, 1):
            mine = [
                same
                for (a, b), same in zip(pairs, unanimous, strict=True)
                if index in (task_dataset[a], task_dataset[b])
            ]
            row = table.loc[f"unanimous_cells[d{index}]"]
            assert row["observed"] == np.mean(mine)
            assert row["replicated_mean"] == pytest.approx(replicated, abs=0.01)
            assert row["outside"] == (overdispersion == "none")
