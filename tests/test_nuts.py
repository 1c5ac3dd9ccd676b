"""The NUTS driver: tuning and draws through one compiled run of iterations."""

from __future__ import annotations

import numpy as np
import pytest

import bayespref as bp
from bayespref.inference.nuts import run_lengths


@pytest.mark.parametrize(
    ("total", "lengths"),
    [(1000, [25] * 40), (100, [25] * 4), (0, []), (45, [25, 20]), (60, [25, 25, 10]), (1, [1])],
)
def test_run_lengths_cover_the_iterations_in_runs_of_25(total, lengths):
    assert run_lengths(total) == lengths


def test_a_single_chain_with_uneven_tuning_gives_every_draw_and_recovers_the_truth():
    """Tuning of 30 and a block of 45 run as one compiled run each; the draws are what NUTS
    gives (distinct, with their stats) and the utilities follow the truth."""
    simulation = bp.simulate(n_tasks=30, n_datasets=2, n_comparisons=1500, repeats=4, seed=5)
    settings = bp.SamplerSettings(chains=1, tune=30, draws=45, seed=3)
    fit = bp.fit(simulation.comparisons, simulation.tasks, settings=settings, progressbar=True)
    mu = fit.posterior["mu"]
    assert mu.sizes["chain"] == 1 and mu.sizes["draw"] == 45
    assert np.unique(mu.values[0, :, 0]).size > 30  # the chain moves
    stats = fit.idata["sample_stats"]
    assert stats["n_steps"].shape == (1, 45) and (stats["n_steps"].values >= 1).all()
    truth = simulation.truth.set_index("task_id").loc[fit.tasks["task_id"], "mu"].to_numpy()
    assert np.corrcoef(mu.mean("draw").values[0], truth)[0, 1] > 0.9
