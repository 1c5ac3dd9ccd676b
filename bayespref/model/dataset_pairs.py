"""Cell terms that depend only on the datasets of a cell's two tasks: the position bias, the
noise scale sqrt(sigma_i^2 + sigma_j^2) when noise is per dataset, and a beta-binomial cell's
concentration when it is per dataset. Each is computed once per ordered pair of datasets and read
by one index per cell.

Read per task and then per cell, each term cost two gathers along the cells in the log density
and two scatter-adds in its gradient, which XLA's CPU backend runs element by element: on
benchmarks/conditions.py's design (9,360 cells) they took more of a gradient than the likelihood
kernel itself (benchmarks/model_gradient.py)."""

from __future__ import annotations

import numpy as np
import pytensor.tensor as pt


def dataset_pair_index(
    task_dataset: np.ndarray, a_idx: np.ndarray, b_idx: np.ndarray, n_datasets: int
) -> np.ndarray:
    """Each cell's ordered pair of datasets (first-shown task's, second's) as one index into a
    flattened (dataset, dataset) table."""
    return task_dataset[a_idx] * n_datasets + task_dataset[b_idx]


def position_offset(position: pt.TensorLike, scope: str, pairs: np.ndarray) -> pt.TensorLike:
    """Each cell's position term: one bias ('global'), the mean of the two datasets' terms
    ('dataset') or the ordered pair's term ('pair': a (dataset, dataset) matrix), as
    model/choice.py's first_choice_z reads them."""
    if scope == "global":
        return position
    if scope == "dataset":
        position = (position[:, None] + position[None, :]) / 2
    return position.flatten()[pairs]


def inverse_noise_scale(sigma_dataset: pt.TensorVariable, pairs: np.ndarray) -> pt.TensorVariable:
    """1 / sqrt(sigma_d^2 + sigma_e^2) of each cell from its datasets' noise."""
    square = sigma_dataset**2
    return (1.0 / pt.sqrt(square[:, None] + square[None, :])).flatten()[pairs]


def pair_concentration(log_dataset: pt.TensorVariable, pairs: np.ndarray) -> pt.TensorVariable:
    """Each cell's Beta concentration, the geometric mean of its two datasets'."""
    return pt.exp((log_dataset[:, None] + log_dataset[None, :]) / 2).flatten()[pairs]
