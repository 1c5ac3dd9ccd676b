"""Warm starts for NUTS from the Laplace approximation (inference/approx.py): every chain starts
at its own draw from N(mode, H^-1), and the diagonal of H^-1 seeds NUTS's inverse mass matrix, so
that adaptation has little left to learn and tuning can be short. The spread the approximation
fixes by empirical Bayes starts at a draw from its 1-D Laplace, with that variance."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from bayespref.inference.approx import LaplaceInfo, SpreadSetup, laplace_mode
from bayespref.inference.mode_finding import gaussian_draws


@dataclass(frozen=True)
class WarmStart:
    """Per value variable of the model (in `model.value_vars` order): starts shaped
    (chains, *shape); and the flat diagonal inverse mass matrix in the same order."""

    names: list[str]
    starts: list[np.ndarray]
    inverse_mass_matrix: np.ndarray
    seconds: float
    laplace: LaplaceInfo

    def as_dtype(self, dtype: str) -> WarmStart:
        return WarmStart(
            self.names,
            [start.astype(dtype) for start in self.starts],
            self.inverse_mass_matrix.astype(dtype),
            self.seconds,
            self.laplace,
        )


def _posterior_variances(factor: np.ndarray) -> np.ndarray:
    """diag(H^-1) from H's lower Cholesky factor L: the squared column norms of L^-1."""
    from scipy.linalg import lapack

    inverse, info = lapack.dtrtri(factor, lower=1)
    if info:
        raise np.linalg.LinAlgError("singular Cholesky factor")
    return np.einsum("ij,ij->j", inverse, inverse)


def laplace_warm_start(
    model, setup: SpreadSetup, cells, task_dataset: np.ndarray, chains: int, seed: int
) -> WarmStart:
    """Starts and inverse mass matrix for `model` (built in float64) from its Laplace
    approximation. Raises ApproximationError where the approximation has no Gaussian."""
    started = time.perf_counter()
    found = laplace_mode(model, setup, cells, task_dataset)
    rng = np.random.default_rng(seed)
    flat_starts = gaussian_draws(found.mode, found.factor, chains, rng)
    variances = found.unravel(_posterior_variances(found.factor))
    per_chain = [found.unravel(start) for start in flat_starts]
    fixed_names = [value.name for value in found.fixed_model.value_vars]
    spread_value = model.rvs_to_values[model[setup.name]].name  # log-transformed: a HalfNormal
    starts, variance = {}, {}
    for i, name in enumerate(fixed_names):
        starts[name] = np.stack([np.asarray(point[i]) for point in per_chain])
        variance[name] = np.asarray(variances[i])
    noise = rng.standard_normal((chains, found.log_spread.size))
    starts[spread_value] = (found.log_spread + found.log_spread_sd * noise).reshape(
        chains, *setup.shape
    )
    variance[spread_value] = (found.log_spread_sd**2).reshape(setup.shape)
    names = [value.name for value in model.value_vars]
    return WarmStart(
        names=names,
        starts=[starts[name] for name in names],
        inverse_mass_matrix=np.concatenate([np.ravel(variance[name]) for name in names]),
        seconds=time.perf_counter() - started,
        laplace=found.info,
    )
