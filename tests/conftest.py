"""Shared fixtures: small simulations and one small fit reused by the tests that only read it."""

from __future__ import annotations

import numpy as np
import pytest

import bayespref as bp

FAST = bp.SamplerSettings(chains=2, draws=200, tune=200, seed=1)


@pytest.fixture(scope="session")
def small_simulation():
    return bp.simulate(
        n_tasks=40,
        n_datasets=2,
        n_comparisons=1200,
        repeats=2,
        position_bias=0.4,
        refusal_rate=0.05,
        unparsed_rate=0.02,
        seed=11,
    )


@pytest.fixture(scope="session")
def small_fit_dir(tmp_path_factory, small_simulation):
    out = tmp_path_factory.mktemp("fits") / "small"
    bp.fit(
        small_simulation.comparisons,
        small_simulation.tasks,
        settings=FAST,
        out=out,
        progressbar=False,
    )
    return out


def interval_coverage(draws: np.ndarray, truth: np.ndarray, mass: float) -> float:
    """Share of true values inside the central `mass` interval of draws shaped (item, sample)."""
    low, high = np.quantile(draws, [(1 - mass) / 2, (1 + mass) / 2], axis=1)
    return float(np.mean((truth >= low) & (truth <= high)))
