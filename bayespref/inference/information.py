"""What choice cells at one point of a model say about each task: the Fisher information about
its utility (binomial or beta-binomial cells) and the share of trials predicted near certain.
The Laplace approximation (approx.py) reads both at its modes."""

from __future__ import annotations

import numpy as np

from bayespref.model.choice import first_choice_probability, first_choice_z
from bayespref.model.repeats import cell_log_concentration


def near_certain_share(
    mu: np.ndarray, sigma: np.ndarray, position, scope: str, cells, task_dataset, link: str
) -> float:
    """Share of the trials whose first choice is predicted with probability under 5% or over
    95% at one point."""
    a_idx, b_idx = cells["a_idx"].to_numpy(), cells["b_idx"].to_numpy()
    z = first_choice_z(mu, sigma, position, a_idx, b_idx, task_dataset, scope)
    p = first_choice_probability(z, link)
    n = cells["n"].to_numpy()
    return float(np.sum(n * (np.minimum(p, 1 - p) < 0.05)) / max(n.sum(), 1))


def beta_binomial_trials(
    n: np.ndarray, first: np.ndarray, second: np.ndarray, concentration: np.ndarray
) -> np.ndarray:
    """The expected Fisher information about P of BetaBinomial(n, kappa P, kappa (1 - P)) cells
    in binomial trials at the same P: I(P) P (1 - P), n for n = 1 or kappa -> infinity, and
    above the design effect n / (1 + (n - 1) / (kappa + 1)) (k / n is not efficient here), by up
    to a third for near-certain cells at kappa ~ 1, which real data are full of: so exact, a sum
    over k = 0..n (work in proportion to the trials), the score kappa (sum_{j<k} 1 / (a + j) -
    sum_{j<n-k} 1 / (b + j)) with a = kappa P, b = kappa (1 - P). `first`, `second`: P, 1 - P."""
    from scipy.special import gammaln

    # The value's limit as P -> 0 is finite; clipping keeps a = kappa P from underflowing to 0.
    first, second = np.clip(first, 1e-10, 1.0), np.clip(second, 1e-10, 1.0)
    trials = np.empty(len(n))
    for count in np.unique(n):
        rows = n == count
        kappa = concentration[rows, None]
        a, b = kappa * first[rows, None], kappa * second[rows, None]
        j, k = np.arange(count), np.arange(count + 1)
        zero = np.zeros((len(a), 1))
        sum_a = np.concatenate([zero, np.cumsum(1 / (a + j), axis=1)], axis=1)  # index k
        sum_b = np.concatenate([zero, np.cumsum(1 / (b + j), axis=1)], axis=1)  # index n - k
        score = kappa * (sum_a - sum_b[:, ::-1])
        log_pmf = (
            gammaln(count + 1.0) - gammaln(k + 1.0) - gammaln(count - k + 1.0)
            + gammaln(k + a) - gammaln(a) + gammaln(count - k + b) - gammaln(b)
            + gammaln(kappa) - gammaln(count + kappa)
        )  # fmt: skip
        trials[rows] = np.sum(np.exp(log_pmf) * score**2, axis=1) * first[rows] * second[rows]
    return trials


def task_information(
    mu: np.ndarray,
    sigma: np.ndarray,
    position,
    scope: str,
    cells,
    task_dataset,
    link: str,
    concentration: np.ndarray | None = None,
) -> np.ndarray:
    """Fisher information about each task's utility from its comparisons, at one point; with a
    per-task Beta `concentration`, of beta-binomial cells (each cell's kappa the geometric mean
    of its two tasks', as the model has it)."""
    from scipy.special import expit, log_ndtr

    a_idx, b_idx = cells["a_idx"].to_numpy(), cells["b_idx"].to_numpy()
    z = first_choice_z(mu, sigma, position, a_idx, b_idx, task_dataset, scope)
    if link == "probit":  # phi(z)^2 / (Phi(z) Phi(-z)), in logs so that large |z| stays finite
        weight = np.exp(-(z**2) - np.log(2 * np.pi) - log_ndtr(z) - log_ndtr(-z))
    else:
        weight = expit(z) * expit(-z)
    trials = cells["n"].to_numpy()
    if concentration is not None:
        first = first_choice_probability(z, link)
        second = first_choice_probability(-z, link)
        kappa = np.exp(cell_log_concentration(np.log(concentration), a_idx, b_idx))
        trials = beta_binomial_trials(trials, first, second, kappa)
    per_cell = trials * weight / (sigma[a_idx] ** 2 + sigma[b_idx] ** 2)
    n_tasks = len(task_dataset)
    return np.bincount(a_idx, per_cell, n_tasks) + np.bincount(b_idx, per_cell, n_tasks)
