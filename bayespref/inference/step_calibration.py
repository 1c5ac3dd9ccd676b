"""One more setting of each chain's step size after short tuning.

NumPyro (as Stan) sets the step size by dual averaging, last in a terminal window after the final
mass-matrix update: 50 iterations at default tuning, but 10% of tuning from 20 to 149 iterations
(10 at 100), and below 20 one window for all of tuning. Ten iterations leave it noisy: on
benchmarks/conditions.py's design (seed 1, tune 100) chains whose mass matrices were equally good
(every coordinate's posterior sd within 0.66-1.62 of the matrix's, on all four) ended with steps
of 0.20, 0.21, 0.12 and 0.12, acceptance 0.88, 0.88, 0.97 and 0.95 against a target of 0.9, and
the two small-step chains mixed far worse at the same 31 leapfrog steps a draw (lag-1
autocorrelation of the dataset means 0.51-0.71 against 0.09-0.43).

So after such tuning the chains run CALIBRATION_RUN more iterations at their steps, not kept,
and each chain's step is scaled by sqrt((1 - target) / (1 - acceptance)), within [1/2, 2]. The
square root is the high-dimensional rule for leapfrog: the energy error's mean grows as
step^4 x dimension, and for small errors 1 - acceptance grows as its square root (Neal 2011,
"MCMC using Hamiltonian dynamics", section 4; Beskos et al. 2013), so as step^2. 25 iterations
estimate a chain's acceptance with noise: on a Gaussian the chains' mean distance from the target
fell from 0.035 to 0.019 over 80 chains, though one seed's 8 chains went from 0.030 to 0.039
(tests/test_step_calibration.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from numpyro.infer.hmc import HMCState

CALIBRATION_RUN = 25  # iterations at the tuned steps whose acceptance sets the new ones
TERMINAL_WINDOW = 50  # NumPyro's last step-size window at default tuning
FACTOR_RANGE = (0.5, 2.0)


def needs_calibration(tune: int) -> bool:
    """Whether NumPyro's last step-size window for `tune` iterations is shorter than at default
    tuning (no tuning: no calibration either)."""
    from numpyro.infer.hmc_util import build_adaptation_schedule

    if tune == 0:
        return False
    start, end = build_adaptation_schedule(tune)[-1]
    return end - start + 1 < TERMINAL_WINDOW


def step_factors(acceptance: np.ndarray, target: float) -> np.ndarray:
    """Per chain, the factor on its step that brings its mean acceptance (over iterations) to
    `target` if 1 - acceptance grows as the step squared."""
    shortfall = np.maximum(1.0 - np.asarray(acceptance, np.float64), 1e-6)
    return np.clip(np.sqrt((1.0 - target) / shortfall), *FACTOR_RANGE)


def with_step_factors(state: HMCState, factors: np.ndarray) -> HMCState:
    """`state` (NumPyro's HMCState, stacked over chains) with each chain's step times its
    factor. After tuning the kernel reads the step as it is, with no more adaptation."""
    import jax.numpy as jnp

    adapt = state.adapt_state
    steps = np.asarray(adapt.step_size, np.float64) * factors
    adapt = adapt._replace(step_size=jnp.asarray(steps, dtype=adapt.step_size.dtype))
    return state._replace(adapt_state=adapt)
