"""What a pair's repeats share, in plain arrays: the pair index and orientation of pair effects,
a beta-binomial cell's concentration and its shared probability. The PyMC terms
(model/overdispersion.py) and replicates from posterior draws (analysis/prediction.py) both use
them; no PyMC here, so predictions load without it."""

from __future__ import annotations

import numpy as np

PAIR_EFFECTS = ("pair", "pair-by-dataset", "pair-by-task")
BETA_BINOMIAL = ("beta-binomial", "beta-binomial-by-task")


def pair_index(a_idx: np.ndarray, b_idx: np.ndarray, condition_idx, n_tasks: int):
    """Each cell's unordered pair (per condition) as an index into 0..pairs-1, the number of
    pairs, and the cell's orientation: +1 where the lower task index is shown first, else -1, so
    an effect favours the same task in both orders."""
    low, high = np.minimum(a_idx, b_idx), np.maximum(a_idx, b_idx)
    codes = (np.asarray(condition_idx) * n_tasks + low) * n_tasks + high
    pairs, pair_idx = np.unique(codes, return_inverse=True)
    return pair_idx, len(pairs), np.where(a_idx == low, 1.0, -1.0)


def cell_log_concentration(log_task, a_idx, b_idx):
    """log kappa of each cell, the mean of its two tasks' log concentrations (their geometric
    mean), from a tensor (task,) in the model or draws (task, draws)."""
    return (log_task[a_idx] + log_task[b_idx]) / 2


def shared_probability(p, concentration, rng: np.random.Generator, size=None) -> np.ndarray:
    """The probability a beta-binomial cell's repeats share: one draw from
    Beta(kappa P, kappa (1 - P)) per cell, mean P."""
    tiny = np.finfo(float).tiny
    return rng.beta(
        np.maximum(concentration * p, tiny), np.maximum(concentration * (1 - p), tiny), size=size
    )
