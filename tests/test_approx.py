"""The Laplace approximation (`--method approx`): recovery, calibration, labelling, seeds."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from conftest import interval_coverage
from scipy.special import ndtr
from scipy.stats import betabinom, norm
from typer.testing import CliRunner

import bayespref as bp
from bayespref.cli.app import app
from bayespref.inference.approx import spread_marginal
from bayespref.inference.information import beta_binomial_trials, task_information
from bayespref.posterior.draws import draws
from bayespref.workflows.fitting import APPROX_LABEL


@pytest.fixture(scope="module")
def approximate():
    simulation = bp.simulate(
        n_tasks=200, n_datasets=5, n_comparisons=6000, position_bias=0.3, seed=7
    )
    result = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        settings=bp.SamplerSettings(seed=3),
        method="approx",
        progressbar=False,
    )
    return simulation, result


def test_recovers_utilities_with_calibrated_intervals(approximate):
    simulation, result = approximate
    truth = simulation.truth.set_index("task_id").loc[result.tasks["task_id"], "mu"].to_numpy()
    mu = draws(result.posterior, "mu")
    assert np.corrcoef(mu.mean(axis=1), truth)[0, 1] >= 0.95
    assert 0.80 <= interval_coverage(mu, truth, 0.90) <= 0.97
    bias = result.params.set_index("name").loc["position_bias"]
    assert bias["low"] <= 0.3 <= bias["high"]
    spread = result.params.set_index("name").loc["dataset_spread[dataset_0]"]
    assert 0 < spread["low"] < spread["mean"] < spread["high"]


def test_every_output_says_approximate(approximate, tmp_path):
    _, result = approximate
    assert result.diagnostics.approximate is True
    assert result.diagnostics.passed and result.diagnostics.measures["max_abs_gradient"] < 1e-2
    assert result.diagnostics.sampler["precision"] == "float64"  # auto: float32 is for NUTS
    assert result.idata.attrs["method"] == "approx"
    assert (result.utilities["method"] == APPROX_LABEL).all()
    assert (result.params["method"] == APPROX_LABEL).all()
    result.save(tmp_path / "fit")
    loaded = bp.load_fit(tmp_path / "fit")
    assert loaded.idata.attrs["approximate"] == 1
    assert json.loads((tmp_path / "fit" / "diagnostics.json").read_text())["approximate"]
    assert pd.read_csv(tmp_path / "fit" / "utilities.csv")["method"].eq(APPROX_LABEL).all()
    assert loaded.idata["log_likelihood"]["first_chosen"].dtype == np.float32
    assert loaded.posterior.sizes["chain"] == 1 and loaded.posterior.sizes["draw"] == 1000


def test_same_seed_same_numbers_and_other_seed_other_draws(approximate):
    simulation, result = approximate
    again = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        settings=bp.SamplerSettings(seed=3),
        method="approx",
        progressbar=False,
        log_likelihood=False,
    )
    pd.testing.assert_frame_equal(again.utilities, result.utilities)
    other = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        settings=bp.SamplerSettings(seed=4),
        method="approx",
        progressbar=False,
        log_likelihood=False,
    )
    assert not np.allclose(other.utilities["mu_low"], result.utilities["mu_low"])
    # the mode does not depend on the seed: only the Monte Carlo error of the draws differs
    np.testing.assert_allclose(other.utilities["mu_mean"], result.utilities["mu_mean"], atol=0.05)


def test_spread_marginal_recovers_a_known_spread():
    rng = np.random.default_rng(0)
    variance = rng.uniform(0.1, 1.0, 4000)
    deviation = rng.normal(0.0, np.sqrt(2.0**2 + variance))
    log_spread, sd = spread_marginal(deviation, variance, prior_sd=5.0)
    assert abs(log_spread - np.log(2.0)) < 3 * sd and 0.005 < sd < 0.05


def test_task_information_matches_the_probit_formula():
    cells = pd.DataFrame({"a_idx": [0, 1], "b_idx": [1, 2], "n": [10, 4]})
    information = task_information(
        mu=np.zeros(3),
        sigma=np.ones(3),
        position=0.0,
        scope="global",
        cells=cells,
        task_dataset=np.zeros(3, dtype=int),
        link="probit",
    )
    per_trial = (1 / (2 * np.pi)) / 0.25 / 2  # phi(0)^2 / (Phi(0) Phi(0)) / (1 + 1)
    np.testing.assert_allclose(information, per_trial * np.array([10, 14, 4]))


def _beta_binomial_information(n: int, p: float, kappa: float, step: float = 1e-6) -> float:
    """E[(d/dP log BetaBinomial(k | n, kappa P, kappa (1 - P)))^2] from scipy's pmf, the score
    by central differences."""
    k = np.arange(n + 1)
    log_pmf = [betabinom.logpmf(k, n, kappa * q, kappa * (1 - q)) for q in (p - step, p + step)]
    score = (log_pmf[1] - log_pmf[0]) / (2 * step)
    return float(np.sum(betabinom.pmf(k, n, kappa * p, kappa * (1 - p)) * score**2))


def test_beta_binomial_information_matches_its_score_variance():
    """Each beta-binomial cell's information about its tasks' utilities: phi(z)^2 I(P) / (s_a^2 +
    s_b^2), I(P) the expected Fisher information of the cell (from scipy's pmf, finite
    differences), its kappa the geometric mean of its two tasks'."""
    cells = pd.DataFrame({"a_idx": [0, 1, 2], "b_idx": [1, 2, 0], "n": [5, 12, 1]})
    mu, sigma = np.array([0.0, -0.6, 1.5]), np.array([1.0, 0.8, 1.3])
    concentration = np.array([0.5, 2.0, 30.0])
    information = task_information(
        mu, sigma, 0.2, "global", cells, np.zeros(3, dtype=int), "probit", concentration
    )
    per_cell = []
    for a, b, n in cells[["a_idx", "b_idx", "n"]].itertuples(index=False):
        scale2 = sigma[a] ** 2 + sigma[b] ** 2
        z = (mu[a] - mu[b] + 0.2) / np.sqrt(scale2)
        kappa = np.sqrt(concentration[a] * concentration[b])
        information_p = _beta_binomial_information(n, ndtr(z), kappa)
        per_cell.append(norm.pdf(z) ** 2 * information_p / scale2)
    expected = [per_cell[0] + per_cell[2], per_cell[0] + per_cell[1], per_cell[1] + per_cell[2]]
    np.testing.assert_allclose(information, expected, rtol=1e-5)


def test_beta_binomial_trials_between_the_design_effect_and_n():
    """In binomial trials: n for one trial or kappa -> infinity; else above the design effect
    n / (1 + (n - 1) / (kappa + 1)) (k / n is not efficient) and below n; finite where P
    underflows."""
    n = np.array([1, 1, 5, 5, 5, 5, 5])
    first = np.array([0.3, 0.9, 0.5, 0.5, 0.99, 0.99, 0.0])
    kappa = np.array([0.4, 3.0, 1e7, 1.0, 1.0, 0.3, 1.0])
    trials = beta_binomial_trials(n, first, 1 - first, kappa)
    np.testing.assert_allclose(trials[[0, 1, 2]], [1.0, 1.0, 5.0], rtol=1e-5)
    design = 5 / (1 + 4 / (kappa[3:] + 1))
    assert np.all(trials[3:] >= design - 1e-9) and np.all(trials[3:] < 5)
    assert trials[4] > 1.3 * design[1]  # near certain at kappa 1: a third above
    assert np.isfinite(trials).all()


def test_cli_fit_method_approx(small_simulation, tmp_path):
    small_simulation_dir = tmp_path / "sim"
    bp.write_simulation(small_simulation, small_simulation_dir)
    out = tmp_path / "fit"
    result = CliRunner().invoke(
        app,
        [
            "fit",
            str(small_simulation_dir / "comparisons.csv"),
            "--tasks",
            str(small_simulation_dir / "tasks.csv"),
            "--method",
            "approx",
            "--out",
            str(out),
            "--no-progress",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "APPROXIMATE" in result.output
    assert (out / "posterior.nc").exists()
    unknown = CliRunner().invoke(
        app,
        [
            "fit",
            str(small_simulation_dir / "comparisons.csv"),
            "--method",
            "advi",
            "--out",
            str(tmp_path / "other"),
        ],
    )
    assert unknown.exit_code != 0 and "unknown method 'advi'" in unknown.output


def test_nearly_deterministic_choices_fail_the_diagnostics():
    """The realistic preset: about 80% of trials predicted beyond 5% / 95%, where the Laplace
    intervals were measured far too narrow (coverage 0.57 at 500 tasks), so the fit says so."""
    simulation = bp.simulate(bp.SimulationConfig.realistic(n_tasks=150, seed=2))
    result = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        settings=bp.SamplerSettings(seed=0),
        method="approx",
        progressbar=False,
        log_likelihood=False,
    )
    assert result.diagnostics.measures["near_certain_share"] > 0.5
    assert not result.diagnostics.passed
    assert any("too narrow; use NUTS" in reason for reason in result.diagnostics.reasons)


def test_pair_effect_models_are_refused_before_any_sampling(small_simulation, tmp_path):
    """At the joint mode pair effects absorb each pair's choices, so approx is refused for them
    (benchmarks/approx_coverage.py), from Python and the command line, and nothing is written."""
    bp.write_simulation(small_simulation, tmp_path / "sim")
    out = tmp_path / "pairs"
    comparisons = tmp_path / "sim" / "comparisons.csv"
    with pytest.raises(bp.FitError, match="pair effects .* use NUTS"):
        bp.fit(comparisons, model="hierarchical-pair", method="approx", out=out)
    result = CliRunner().invoke(
        app, ["fit", str(comparisons), "--model", "hierarchical-pair-dataset",
              "--method", "approx", "--out", str(out)],
    )  # fmt: skip
    assert result.exit_code != 0 and "at the mode they take up each pair's" in result.output
    assert "Traceback" not in result.output and not out.exists()
    for model, reason in (
        ("task-concentration", "a concentration per task, checked only"),
        ("task-noise-beta-binomial", "per-task noise on beta-binomial cells: at the mode"),
    ):
        with pytest.raises(bp.FitError, match=reason):
            bp.fit(comparisons, model=model, method="approx", out=out)
    assert not out.exists()


def test_beta_binomial_cells_agree_with_nuts():
    """Per-dataset beta-binomial cells on data with pair effects (few near-certain trials, where
    benchmarks/approx_coverage.py measured approx's coverage as NUTS's): finite draws whose
    utilities and log concentrations agree with a short NUTS run's. Measured: mean |difference|
    0.25 NUTS sd (max 0.74), median sd ratio 0.97."""
    config = bp.SimulationConfig.realistic(n_tasks=60, n_datasets=3, seed=1)
    simulation = bp.simulate(replace(config, task_sd=2.0, dataset_mean_sd=1.0))
    fits = {
        method: bp.fit(
            simulation.comparisons,
            simulation.tasks,
            model="beta-binomial",
            method=method,
            settings=settings,
            progressbar=False,
            log_likelihood=False,
        )
        for method, settings in (
            ("approx", bp.SamplerSettings(seed=0)),
            ("nuts", bp.SamplerSettings(chains=2, draws=300, tune=300, seed=0)),
        )
    }
    approx, nuts = (draws(fits[m].posterior, "mu") for m in ("approx", "nuts"))
    assert np.isfinite(approx).all() and fits["approx"].diagnostics.passed
    distance = np.abs(approx.mean(axis=1) - nuts.mean(axis=1)) / nuts.std(axis=1)
    assert distance.mean() < 0.4 and distance.max() < 1.0
    assert 0.85 < np.median(approx.std(axis=1) / nuts.std(axis=1)) < 1.15
    kappa = {m: draws(fits[m].posterior, "log_concentration_dataset") for m in fits}
    gap = np.abs(kappa["approx"].mean(axis=1) - kappa["nuts"].mean(axis=1))
    assert (gap < 2 * kappa["nuts"].std(axis=1)).all()
