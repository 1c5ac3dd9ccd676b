"""The NUTS driver: tuning and draws through one compiled run of iterations."""

from __future__ import annotations

import numpy as np
import pytest

import bayespref as bp
from bayespref.inference.nuts import chunk_length


@pytest.mark.parametrize(
    ("tune", "draws", "length"),
    [(1000, 1000, 100), (100, 100, 100), (0, 250, 50), (30, 45, 15), (7, 5, 1), (300, 150, 75)],
)
def test_chunk_length_divides_tuning_and_draws(tune, draws, length):
    assert chunk_length(tune, draws) == length


def test_a_single_chain_with_uneven_tuning_gives_every_draw_and_recovers_the_truth():
    """Tuning of 30 and blocks of 45 run as chunks of 15 iterations; the draws are what NUTS
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
