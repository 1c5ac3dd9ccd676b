"""Leaving the identity mass matrix early in short tuning from jittered starts.

NumPyro adapts each chain's diagonal mass matrix in windows (Stan's schedule). With 100 tuning
iterations its first slow window runs from iteration 15 to 89, and until it ends chains run on the
identity, at two to three times the leapfrog steps of a chain with an adapted matrix (7,800-8,900
steps per chain in tuning against 4,100-5,100 with these updates, benchmarks/conditions.py's
design, seeds 1 and 0). Here, at the ends of compiled runs inside that window, every chain is given
the within-chain variances of all chains' draws since the window started or since the last such
update, and its step-size adaptation restarts; NumPyro's own per-chain estimate still replaces it
when the window ends. Longer tuning is left to NumPyro: its first slow window is 25 iterations
long, too short for a run to end inside it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpyro.infer.hmc import HMCState

SHRINK = 5  # Stan's regularisation of a window's variances, as NumPyro's: towards 1e-3
MIN_DRAWS = 10  # per chain: fewer, and a run end inside the window is not an update


def pooled_updates(tune: int, run_lengths: list[int]) -> list[tuple[int, int]]:
    """(after, since) for each update: after `after` iterations (counted from the first), from
    the draws of iterations `since` to `after`. Updates come at the ends of runs strictly inside
    NumPyro's first slow window that leave at least one more run before it ends, each from the
    draws since the window started or since the previous such run end, if at least MIN_DRAWS."""
    from numpyro.infer.hmc_util import build_adaptation_schedule

    schedule = build_adaptation_schedule(tune)
    if len(schedule) < 3:  # no slow window
        return []
    since, last = schedule[1]
    ends = np.cumsum(run_lengths)
    updates = []
    for end, after in zip(ends[:-1], ends[1:], strict=True):
        if since < end and after <= last + 1:
            if end - since >= MIN_DRAWS:
                updates.append((int(end), int(since)))
            since = int(end)
    return updates


def pooled_variances(draws: np.ndarray) -> np.ndarray:
    """Each coordinate's variance within chains, averaged over chains and regularised as
    NumPyro regularises a window's: draws shaped (chain, draw, coordinate)."""
    n = draws.shape[0] * draws.shape[1]
    within = draws.var(axis=1, ddof=1).mean(axis=0)
    return n / (n + SHRINK) * within + 1e-3 * SHRINK / (n + SHRINK)


def with_pooled_mass(state: HMCState, draws: np.ndarray) -> HMCState:
    """`state` (NumPyro's HMCState, stacked over chains) with every chain's inverse mass matrix
    set to `draws`' pooled variances, and its step size scaled by the median change of the
    coordinates' scales (a step moves a coordinate by about step x its scale), from which dual
    averaging restarts. NumPyro restarts it after its own updates from the step it had; the
    scaling is this package's, so that the restart begins near the new matrix's step."""
    import jax.numpy as jnp
    from numpyro.infer.hmc_util import dual_averaging

    adapt = state.adapt_state
    dtype = adapt.inverse_mass_matrix.dtype
    variances = pooled_variances(np.asarray(draws, dtype=np.float64))
    before = np.asarray(adapt.inverse_mass_matrix, dtype=np.float64)
    step = np.asarray(adapt.step_size, np.float64) * np.sqrt(np.median(before / variances, 1))
    start_dual_averaging, _ = dual_averaging()
    restarted = start_dual_averaging(np.log(10 * step))  # leaves shaped (chain,)
    restarted = tuple(
        jnp.broadcast_to(jnp.asarray(new, dtype=old.dtype), old.shape)
        for new, old in zip(restarted, adapt.ss_state, strict=True)
    )
    inverse = jnp.asarray(np.broadcast_to(variances, before.shape), dtype=dtype)
    adapt = adapt._replace(
        step_size=jnp.asarray(step, dtype=adapt.step_size.dtype),
        inverse_mass_matrix=inverse,
        mass_matrix_sqrt=1 / jnp.sqrt(inverse),
        mass_matrix_sqrt_inv=jnp.sqrt(inverse),
        ss_state=restarted,
    )
    return state._replace(adapt_state=adapt)
