"""The Thurstonian choice formula, for predictions from draws, the simulated engine and the
Fisher information. The PyMC model computes the same z with its cell terms read per ordered pair
of datasets (model/builder.py, model/dataset_pairs.py)."""

from __future__ import annotations

import numpy as np
from scipy.special import expit, ndtr


def first_choice_z(mu, sigma, position, a_idx, b_idx, task_dataset, position_scope: str):
    """Standardised advantage of the first-shown task.

    Works on NumPy arrays shaped (task, draws) (in predictions) and on PyTensor vectors
    (benchmarks/gradient.py). `position` is one bias ('global'), one per dataset ('dataset': a
    pair takes the mean of its two datasets') or a (first's dataset, second's dataset) matrix
    ('pair').
    """
    if position_scope == "dataset":
        position = (position[task_dataset[a_idx]] + position[task_dataset[b_idx]]) / 2
    elif position_scope == "pair":
        position = position[task_dataset[a_idx], task_dataset[b_idx]]
    return (mu[a_idx] - mu[b_idx] + position) / (sigma[a_idx] ** 2 + sigma[b_idx] ** 2) ** 0.5


def cdf(z: np.ndarray, link: str) -> np.ndarray:
    """F(z): the standard normal CDF (probit) or the logistic function (logit)."""
    return ndtr(z) if link == "probit" else expit(z)


def first_choice_probability(z: np.ndarray, link: str, lapse=0.0) -> np.ndarray:
    """P(first chosen) = lapse/2 + (1 - lapse) F(z): a lapse ignores the tasks."""
    return lapse / 2 + (1 - lapse) * cdf(z, link)
