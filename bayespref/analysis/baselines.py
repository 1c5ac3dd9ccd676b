"""The reference method, kept to measure against: maximum-likelihood Thurstone with per-task noise.

As in the research it replicates: a fixed reference task (mu = 0), an ad-hoc quadratic penalty on
log sigma instead of a prior, no position term, and refusals counted as wins for the second-shown
task. It returns point estimates only, so its predictions carry no parameter uncertainty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import log_ndtr, ndtr


@dataclass(frozen=True)
class ReferenceFit:
    task_ids: np.ndarray
    mu: np.ndarray
    sigma: np.ndarray
    converged: bool

    def p_first(self, task_a: pd.Series, task_b: pd.Series) -> np.ndarray:
        """P(first shown is chosen) at the point estimate."""
        index = pd.Series(np.arange(len(self.task_ids)), index=self.task_ids)
        a, b = index.reindex(task_a).to_numpy(), index.reindex(task_b).to_numpy()
        if np.isnan(a.astype(float)).any() or np.isnan(b.astype(float)).any():
            raise KeyError("pairs name tasks the reference fit has not seen")
        return ndtr((self.mu[a] - self.mu[b]) / np.hypot(self.sigma[a], self.sigma[b]))


def reference_cells(comparisons: pd.DataFrame, index: pd.Series) -> tuple[np.ndarray, ...]:
    """(a_idx, b_idx, n, k) per ordered pair, refusals counted as wins for the second task."""
    usable = comparisons[comparisons["choice"].isin(("a", "b", "refusal"))]
    counted = usable.assign(first=(usable["choice"] == "a").astype(np.int64))  # refusal -> b wins
    cells = counted.groupby(["task_a", "task_b"])["first"].agg(n="count", k="sum").reset_index()
    return (
        index.reindex(cells["task_a"]).to_numpy(),
        index.reindex(cells["task_b"]).to_numpy(),
        cells["n"].to_numpy(float),
        cells["k"].to_numpy(float),
    )


def penalized_objective(
    theta: np.ndarray, cells: tuple[np.ndarray, ...], n_tasks: int, log_sigma_penalty: float
) -> tuple[float, np.ndarray]:
    """Negative log-likelihood plus penalty, and its gradient; theta = (mu[1:], log sigma)."""
    a, b, n, k = cells
    mu = np.concatenate([[0.0], theta[: n_tasks - 1]])
    log_sigma = theta[n_tasks - 1 :]
    sigma_sq = np.exp(2 * log_sigma)
    scale = np.sqrt(sigma_sq[a] + sigma_sq[b])
    z = (mu[a] - mu[b]) / scale
    log_first, log_second = log_ndtr(z), log_ndtr(-z)
    log_density = -0.5 * z**2 - 0.5 * np.log(2 * np.pi)
    # d loglik / dz per cell, from stable ratios phi/Phi.
    dz = k * np.exp(log_density - log_first) - (n - k) * np.exp(log_density - log_second)
    loglik = np.sum(k * log_first + (n - k) * log_second)
    grad_mu = np.bincount(a, dz / scale, n_tasks) - np.bincount(b, dz / scale, n_tasks)
    dz_dlog = -z / scale**2
    grad_log_sigma = np.bincount(a, dz * dz_dlog * sigma_sq[a], n_tasks) + np.bincount(
        b, dz * dz_dlog * sigma_sq[b], n_tasks
    )
    value = -loglik + log_sigma_penalty * np.sum(log_sigma**2)
    gradient = np.concatenate([-grad_mu[1:], -grad_log_sigma + 2 * log_sigma_penalty * log_sigma])
    return value, gradient


def fit_reference(comparisons: pd.DataFrame, log_sigma_penalty: float = 1.0) -> ReferenceFit:
    """L-BFGS maximum likelihood with the first task (in sorted order) as the fixed reference."""
    task_ids = np.sort(pd.unique(pd.concat([comparisons["task_a"], comparisons["task_b"]])))
    n_tasks = len(task_ids)
    cells = reference_cells(comparisons, pd.Series(np.arange(n_tasks), index=task_ids))
    result = minimize(
        penalized_objective,
        np.zeros(2 * n_tasks - 1),
        args=(cells, n_tasks, log_sigma_penalty),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 5000},
    )
    mu = np.concatenate([[0.0], result.x[: n_tasks - 1]])
    return ReferenceFit(task_ids, mu, np.exp(result.x[n_tasks - 1 :]), bool(result.success))
