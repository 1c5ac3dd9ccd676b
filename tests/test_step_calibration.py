"""Setting each chain's step once more after short tuning: when, by how much, and that chains
then accept near the target instead of scattering around it."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.hmc import hmc

import bayespref as bp
from bayespref.inference.step_calibration import (
    CALIBRATION_RUN,
    needs_calibration,
    step_factors,
    with_step_factors,
)

SCALES = np.logspace(-1, 1, 100)
TARGET = 0.9


@pytest.mark.parametrize(
    ("tune", "expected"),
    [(100, True), (10, True), (149, True), (150, False), (1000, False), (0, False)],
)
def test_calibration_follows_numpyros_last_step_size_window(tune, expected):
    # NumPyro's last window: all of tuning below 20, 10% of it from 20 to 149 (10 at 100), else 50.
    assert needs_calibration(tune) is expected


def test_factors_scale_the_step_as_the_square_root_of_the_acceptance_shortfall():
    acceptance = np.array([0.9, 0.96, 0.6, 0.975, 0.99, 1.0, 0.3])
    expected = [1.0, np.sqrt(0.1 / 0.04), 0.5, 2.0, 2.0, 2.0, 0.5]  # within [1/2, 2]
    np.testing.assert_allclose(step_factors(acceptance, TARGET), expected, rtol=1e-12)


def _kernel():
    def potential(z):
        return 0.5 * jnp.sum((z / SCALES) ** 2)

    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")

    def initial_state(key, start):
        return init_kernel(start, 100, target_accept_prob=TARGET, rng_key=key)

    def run(state, length):
        def step(state, _):
            state = sample_kernel(state)
            return state, state.accept_prob

        return jax.lax.scan(step, state, None, length=length)

    return jax.vmap(initial_state), jax.jit(jax.vmap(run, in_axes=(0, None)), static_argnums=1)


def test_with_step_factors_changes_only_the_steps():
    initial_state, run = _kernel()
    state, _ = run(initial_state(jax.random.split(jax.random.PRNGKey(0), 3), jnp.ones((3, 100))), 5)
    factors = np.array([0.5, 1.0, 2.0])
    updated = with_step_factors(state, factors)
    np.testing.assert_allclose(
        updated.adapt_state.step_size, np.asarray(state.adapt_state.step_size) * factors, rtol=1e-6
    )
    assert jax.tree.structure(updated) == jax.tree.structure(state)
    for new, old in zip(jax.tree.leaves(updated), jax.tree.leaves(state), strict=True):
        assert (new.shape, new.dtype) == (old.shape, old.dtype)
    same = jax.tree.leaves(updated._replace(adapt_state=state.adapt_state))
    for new, old in zip(same, jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(new, old)


def test_calibrated_chains_accept_nearer_the_target():
    """After NumPyro's 100 tuning iterations (10 in its last step-size window), 8 chains on a
    Gaussian accept 0.82-0.97 (ten seeds, float32 and float64 alike), mostly above the target;
    calibrated, nearer it on average over the 80 chains (one seed's chains alone can do worse:
    25 iterations estimate a chain's acceptance with noise)."""
    chains = 8
    initial_state, run = _kernel()
    distances = {"tuned": [], "calibrated": []}
    for seed in range(10):
        keys = jax.random.split(jax.random.PRNGKey(seed), chains)
        starts = np.random.default_rng(seed).uniform(-1, 1, (chains, SCALES.size))
        state, _ = run(initial_state(keys, jnp.asarray(starts)), 100)
        state, acceptance = run(state, CALIBRATION_RUN)
        factors = step_factors(np.asarray(acceptance).mean(axis=1), TARGET)
        for name, start in (("tuned", state), ("calibrated", with_step_factors(state, factors))):
            _, acceptance = run(start, 300)
            distances[name] += list(np.abs(np.asarray(acceptance).mean(axis=1) - TARGET))
    assert np.mean(distances["calibrated"]) < 0.7 * np.mean(distances["tuned"])


def test_short_tuning_calibrates_and_default_tuning_does_not():
    simulation = bp.simulate(n_tasks=20, n_datasets=2, n_comparisons=600, repeats=4, seed=4)
    factors = {}
    for tune in (100, 150):
        settings = bp.SamplerSettings(chains=2, tune=tune, draws=100, seed=1)
        fit = bp.fit(simulation.comparisons, simulation.tasks, settings=settings, progressbar=False)
        factors[tune] = fit.diagnostics.sampler["step_factors"]
    assert len(factors[100]) == 2 and all(0.5 <= f <= 2.0 for f in factors[100])
    assert factors[150] == []
