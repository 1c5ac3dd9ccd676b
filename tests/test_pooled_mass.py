"""Pooled mass matrices early in short tuning: when they are set, what they are, and that they
cut the leapfrog steps of chains that would otherwise wait on the identity."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.infer.hmc import hmc

import bayespref as bp
from bayespref.inference.nuts import run_lengths
from bayespref.inference.pooled_mass import (
    MIN_DRAWS,
    pooled_updates,
    pooled_variances,
    with_pooled_mass,
)

SCALES = np.logspace(-2, 1, 40)  # a Gaussian target whose scales span three decades


@pytest.mark.parametrize(
    ("tune", "updates"),
    [
        (100, [(25, 15), (50, 25)]),  # NumPyro's first slow window: iterations 15 to 89
        (120, [(50, 25), (75, 50)]),  # window 18 to 107: 7 draws by iteration 25 are too few
        (50, []),  # window 7 to 44: no run ends inside it with a run left
        (150, []),  # window 75 to 99: longer tuning is left to NumPyro
        (1000, []),
    ],
)
def test_updates_come_at_run_ends_inside_numpyros_first_slow_window(tune, updates):
    assert pooled_updates(tune, run_lengths(tune)) == updates


def test_every_update_has_enough_draws_since_the_last():
    for tune in range(20, 200):
        updates = pooled_updates(tune, run_lengths(tune))
        assert all(after - since >= MIN_DRAWS for after, since in updates)


def test_pooled_variances_are_within_chain_and_regularised_as_numpyros():
    rng = np.random.default_rng(0)
    draws = rng.normal(size=(4, 50, 3)) * [0.1, 1.0, 10.0]
    draws += rng.normal(size=(4, 1, 3)) * 100  # chains far apart: not part of the estimate
    within = np.mean([np.var(chain, axis=0, ddof=1) for chain in draws], axis=0)
    expected = 200 / 205 * within + 1e-3 * 5 / 205
    np.testing.assert_allclose(pooled_variances(draws), expected, rtol=1e-12)


def _kernel(tune: int):
    def potential(z):
        return 0.5 * jnp.sum((z / SCALES) ** 2)

    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")

    def initial_state(key, start):
        return init_kernel(start, tune, target_accept_prob=0.9, rng_key=key)

    def run(state, length):
        def step(state, _):
            state = sample_kernel(state)
            return state, (state.z, state.num_steps)

        return jax.lax.scan(step, state, None, length=length)

    return jax.vmap(initial_state), jax.jit(jax.vmap(run, in_axes=(0, None)), static_argnums=1)


def _tuning_steps(pooled: bool, chains: int = 4, tune: int = 100) -> np.ndarray:
    """Leapfrog steps per iteration of NumPyro's tuning on the Gaussian, averaged over chains,
    with or without the pooled updates between runs of 25."""
    initial_state, run = _kernel(tune)
    keys = jax.random.split(jax.random.PRNGKey(1), chains)
    starts = jnp.asarray(np.random.default_rng(2).uniform(-1, 1, (chains, SCALES.size)))
    state = initial_state(keys, starts)
    updates = dict(pooled_updates(tune, run_lengths(tune))) if pooled else {}
    steps, done = [], 0
    for length in run_lengths(tune):
        state, (draws, n_steps) = run(state, length)
        steps.append(np.asarray(n_steps))
        done += length
        if done in updates:
            before = state
            state = with_pooled_mass(state, np.asarray(draws)[:, updates[done] - done + length :])
            assert jax.tree.structure(state) == jax.tree.structure(before)
            for new, old in zip(jax.tree.leaves(state), jax.tree.leaves(before), strict=True):
                assert (new.shape, new.dtype) == (old.shape, old.dtype)
    return np.concatenate(steps, axis=1).mean(axis=0)


def test_pooled_update_sets_every_chains_matrix_and_restarts_the_step_size():
    initial_state, run = _kernel(100)
    keys = jax.random.split(jax.random.PRNGKey(0), 3)
    state, (draws, _) = run(initial_state(keys, jnp.zeros((3, SCALES.size))), 25)
    draws = np.asarray(draws)[:, 15:]
    updated = with_pooled_mass(state, draws).adapt_state
    variances = pooled_variances(draws)
    for chain in range(3):
        np.testing.assert_allclose(updated.inverse_mass_matrix[chain], variances, rtol=1e-5)
        np.testing.assert_allclose(
            updated.mass_matrix_sqrt[chain], 1 / np.sqrt(variances), rtol=1e-5
        )
    # From the identity: the step grows as the coordinates' scales shrink, at their median.
    expected = np.asarray(state.adapt_state.step_size) * np.sqrt(np.median(1 / variances))
    np.testing.assert_allclose(updated.step_size, expected, rtol=1e-5)
    np.testing.assert_allclose(updated.ss_state[-1], np.log(10 * expected), rtol=1e-5)
    assert np.all(np.asarray(updated.ss_state[3]) == 0)  # dual averaging's iteration count


def test_pooled_updates_cut_the_steps_of_tuning_on_the_identity():
    """Iterations 50 to 89 run on the identity under NumPyro's own schedule, on pooled
    variances with the updates."""
    numpyro_only, pooled = _tuning_steps(pooled=False), _tuning_steps(pooled=True)
    assert pooled[50:90].mean() < 0.25 * numpyro_only[50:90].mean()
    assert pooled.sum() < 0.6 * numpyro_only.sum()


def test_short_tuning_from_jittered_starts_gives_a_trusted_fit():
    simulation = bp.simulate(n_tasks=40, n_datasets=2, n_comparisons=2000, repeats=3, seed=8)
    settings = bp.SamplerSettings(
        chains=2, tune=100, draws=100, until_trusted=True, max_draws=1500, seed=3
    )
    fit = bp.fit(simulation.comparisons, simulation.tasks, settings=settings, progressbar=False)
    assert fit.diagnostics.sampler["init"] == "jitter"
    assert fit.diagnostics.sampler["pooled_mass_updates"] == [25, 50]
    assert fit.diagnostics.passed, fit.diagnostics.reasons
    truth = simulation.truth.set_index("task_id").loc[fit.tasks["task_id"], "mu"].to_numpy()
    mu = fit.posterior["mu"].mean(("chain", "draw")).values
    assert np.corrcoef(mu, truth)[0, 1] > 0.9
