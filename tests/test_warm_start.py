"""Warm starts from the Laplace approximation and sampling until the trust thresholds hold."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import interval_coverage

import bayespref as bp
from bayespref.checks.convergence import THRESHOLDS, convergence, diagnose
from bayespref.errors import FitError
from bayespref.posterior.draws import draws


@pytest.fixture(scope="module")
def simulation():
    return bp.simulate(
        n_tasks=60, n_datasets=3, n_comparisons=2400, repeats=2, position_bias=0.3, seed=21
    )


@pytest.fixture(scope="module")
def trusted(simulation):
    settings = bp.SamplerSettings(
        chains=2, tune=100, draws=100, init="laplace", until_trusted=True, max_draws=2000, seed=4
    )
    return bp.fit(simulation.comparisons, simulation.tasks, settings=settings, progressbar=False)


def _passes(idata) -> bool:
    measures = diagnose(idata, *convergence(idata)).measures
    return (
        measures["max_r_hat"] <= THRESHOLDS["r_hat"]
        and measures["min_ess_bulk"] >= THRESHOLDS["ess_bulk"]
    )


def test_warm_started_short_fit_is_trusted_and_recovers_the_truth(trusted, simulation):
    sampler = trusted.diagnostics.sampler
    assert sampler["init"] == "laplace" and sampler["target_reached"]
    assert sampler["pooled_mass_updates"] == []  # the approximation's variances, not pooled
    assert trusted.diagnostics.passed, trusted.diagnostics.reasons
    posterior = trusted.idata["posterior"].to_dataset()
    mu = draws(posterior, "mu")
    truth = simulation.truth.set_index("task_id").loc[trusted.tasks["task_id"], "mu"].to_numpy()
    assert 0.8 <= interval_coverage(mu, truth, 0.9) <= 1.0
    assert np.corrcoef(mu.mean(axis=1), truth)[0, 1] > 0.9
    bias = draws(posterior, "position_bias").ravel()
    assert np.quantile(bias, 0.01) < 0.3 < np.quantile(bias, 0.99)


def test_sampling_stops_at_the_first_block_that_reaches_the_target(trusted):
    sampler = trusted.diagnostics.sampler
    idata = trusted.idata
    assert idata["posterior"].sizes["draw"] == sampler["draws_per_chain"] == 100 * sampler["blocks"]
    assert sampler["draws_per_chain"] < 2000
    assert _passes(idata)
    if sampler["blocks"] > 1:  # the draws one block earlier were not enough
        earlier = idata.isel(draw=slice(0, sampler["draws_per_chain"] - 100))
        assert not _passes(earlier)


def test_sampling_until_trusted_respects_its_cap(simulation):
    settings = bp.SamplerSettings(
        chains=2, tune=50, draws=20, until_trusted=True, max_draws=45, seed=1
    )
    result = bp.fit(simulation.comparisons, simulation.tasks, settings=settings, progressbar=False)
    sampler = result.diagnostics.sampler
    assert sampler["target_reached"] is False
    assert sampler["blocks"] == 2 and result.idata["posterior"].sizes["draw"] == 40
    assert not result.diagnostics.passed
    assert any("max_draws=45" in reason for reason in result.diagnostics.reasons)


def test_warm_start_gives_distinct_starts_and_a_positive_mass_matrix(simulation):
    from bayespref.inference import device
    from bayespref.inference.approx import SpreadSetup
    from bayespref.inference.warm_start import laplace_warm_start
    from bayespref.model.builder import build_model
    from bayespref.model.structure import PRIORS, model_cells

    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    spec = bp.resolve_spec(None)
    setup = SpreadSetup(
        "dataset_spread", data.task_dataset_idx, (3,), PRIORS["dataset_spread_sd"], "probit"
    )
    with device.floating_point("float64"):
        model = build_model(spec, data)
        warm = laplace_warm_start(
            model, setup, model_cells(spec, data), data.task_dataset_idx, chains=3, seed=0
        )
    assert warm.names == [value.name for value in model.value_vars]
    sizes = [int(np.prod(model.initial_point()[name].shape)) for name in warm.names]
    assert warm.inverse_mass_matrix.shape == (sum(sizes),)
    assert np.all(warm.inverse_mass_matrix > 0) and np.all(np.isfinite(warm.inverse_mass_matrix))
    for start in warm.starts:
        assert start.shape[0] == 3 and not np.allclose(start[0], start[1])


def test_settings_are_checked():
    with pytest.raises(FitError, match="unknown init"):
        bp.SamplerSettings(init="pathfinder")
    with pytest.raises(FitError, match="max_draws"):
        bp.SamplerSettings(draws=500, until_trusted=True, max_draws=100)


def test_draws_default_to_fixed_or_to_trust_check_blocks():
    assert bp.SamplerSettings().draws == 1000
    assert bp.SamplerSettings(until_trusted=True).draws == 100
    assert bp.SamplerSettings(draws=250, until_trusted=True).draws == 250


def test_cli_until_trusted_draws_blocks_of_100(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import bayespref.workflows.fitting as fitting
    from bayespref.cli.app import app

    seen = {}

    def record(comparisons, tasks, model, settings, **options):
        seen["settings"] = settings
        raise bp.BayesprefError("stop after reading the settings")

    monkeypatch.setattr(fitting, "fit", record)
    comparisons = tmp_path / "comparisons.csv"
    comparisons.write_text("task_a,task_b,choice\nx,y,a\n")
    runner = CliRunner()
    fit_command = ["fit", str(comparisons), "--out", str(tmp_path / "fit")]
    result = runner.invoke(app, [*fit_command, "--until-trusted"])
    assert "stop after reading the settings" in result.output
    assert seen["settings"].draws == 100 and seen["settings"].until_trusted
    runner.invoke(app, fit_command)
    assert seen["settings"].draws == 1000


def test_approx_refuses_drawing_until_trusted(simulation):
    settings = bp.SamplerSettings(until_trusted=True)
    with pytest.raises(FitError, match="method approx takes independent draws"):
        bp.fit(simulation.comparisons, simulation.tasks, settings=settings, method="approx")


def test_centred_condition_shifts_skip_the_laplace_start_and_approx_refuses_them():
    shifted = bp.simulate(
        n_tasks=16,
        n_datasets=2,
        n_comparisons=480,
        repeats=4,
        condition_shifts=((1.0, -1.0),),
        seed=3,
    )
    settings = bp.SamplerSettings(chains=1, tune=20, draws=20, init="laplace", seed=0)
    result = bp.fit(
        shifted.comparisons,
        shifted.tasks,
        model="conditions",
        settings=settings,
        progressbar=False,
        log_likelihood=False,
    )
    note = result.diagnostics.sampler["init_note"]
    assert note.startswith("warm start not attempted") and "no joint mode" in note
    assert result.diagnostics.sampler["init"] == "jitter"
    with pytest.raises(FitError, match="centred condition shifts, with no joint mode"):
        bp.fit(shifted.comparisons, shifted.tasks, model="conditions", method="approx")
