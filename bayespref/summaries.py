"""Plain tables from a posterior: utilities per task and global parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from bayespref import posterior as post

INTERVAL = 0.94
INTERVAL_TAILS = ((1 - INTERVAL) / 2, 1 - (1 - INTERVAL) / 2)
UTILITY_COLUMNS = [
    "task_id",
    "dataset",
    "mu_mean",
    "mu_sd",
    "mu_low",
    "mu_high",
    "sigma_mean",
    "sigma_sd",
    "n_trials",
]
PARAM_COLUMNS = ["name", "mean", "sd", "low", "high", "r_hat", "ess_bulk"]


def utilities_table(
    posterior: xr.Dataset, tasks: pd.DataFrame, n_trials: np.ndarray
) -> pd.DataFrame:
    """Posterior mean, sd and 94% equal-tailed interval of each task's utility and noise."""
    mu = post.draws(posterior, "mu")
    sigma = post.task_sigma(posterior, tasks["dataset_idx"].to_numpy())
    low, high = np.quantile(mu, INTERVAL_TAILS, axis=1)
    return pd.DataFrame(
        {
            "task_id": tasks["task_id"].to_numpy(),
            "dataset": tasks["dataset"].to_numpy(),
            "mu_mean": mu.mean(axis=1),
            "mu_sd": mu.std(axis=1, ddof=1),
            "mu_low": low,
            "mu_high": high,
            "sigma_mean": sigma.mean(axis=1),
            "sigma_sd": sigma.std(axis=1, ddof=1),
            "n_trials": np.asarray(n_trials, dtype=np.int64),
        }
    )[UTILITY_COLUMNS]


def params_table(posterior: xr.Dataset, r_hat: xr.Dataset, ess_bulk: xr.Dataset) -> pd.DataFrame:
    """One row per global or per-dataset parameter; per-task variables live in utilities.csv."""
    rows = []
    for name in post.reported_variables(posterior):
        array = posterior[name]
        if "task" in array.dims:
            continue
        values = post.draws(posterior, name)
        labels = [name]
        if values.ndim == 2:
            dim = next(d for d in array.dims if d not in ("chain", "draw"))
            labels = [f"{name}[{label}]" for label in posterior[dim].values]
        else:
            values = values[None, :]
        r_hats = np.atleast_1d(r_hat[name].values)
        esses = np.atleast_1d(ess_bulk[name].values)
        for label, row, rh, ess in zip(labels, values, r_hats, esses, strict=True):
            low, high = np.quantile(row, INTERVAL_TAILS)
            rows.append([label, row.mean(), row.std(ddof=1), low, high, float(rh), float(ess)])
    return pd.DataFrame(rows, columns=PARAM_COLUMNS)
