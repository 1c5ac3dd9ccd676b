"""Posterior draws as plain arrays with the sample axis last: (task, draws), (draws,), ..."""

from __future__ import annotations

import numpy as np
import xarray as xr

# Sampler-facing pieces that reported variables already express (e.g. mu = mean + spread * offset).
INTERNAL = (
    "mu_offset",
    "dataset_mean_scaled",
    "sigma_offset",
    "position_offset",
    "position_pair_offset",
    "log_sigma_dataset",
    "condition_dataset_offset",
    "condition_task_offset",
    "condition_shift_free",
    "dataset_mean_average",
    "mu_offset_average",
    "refusal_offset",
    "pair_offset",
    "lapse_offset",
    "pair_sd_offset",
)


def reported_variables(posterior: xr.Dataset) -> list[str]:
    return [name for name in posterior.data_vars if name not in INTERNAL]


def draws(posterior: xr.Dataset, name: str) -> np.ndarray:
    """A variable's draws with chain and draw flattened into one trailing sample axis, in
    float64 whatever precision sampled them: summaries, predictions and checks then come out the
    same from a fit in memory and from its saved folder."""
    array = posterior[name]
    other = [dim for dim in array.dims if dim not in ("chain", "draw")]
    ordered = array.transpose(*other, "chain", "draw")
    return ordered.values.reshape(*ordered.shape[:-2], -1).astype(np.float64, copy=False)


def n_samples(posterior: xr.Dataset) -> int:
    return posterior.sizes["chain"] * posterior.sizes["draw"]


def task_sigma(posterior: xr.Dataset, task_dataset: np.ndarray) -> np.ndarray:
    """Noise sigma per task, (task, draws); the constant 1 under shared noise."""
    if "sigma" in posterior:
        return draws(posterior, "sigma")
    if "sigma_dataset" in posterior:
        return draws(posterior, "sigma_dataset")[task_dataset]
    return np.ones((len(task_dataset), n_samples(posterior)))


def task_concentration(posterior: xr.Dataset, task_dataset: np.ndarray) -> np.ndarray | None:
    """Beta concentration per task, (task, draws) (a cell takes the geometric mean of its two
    tasks': model/overdispersion.py); None without beta-binomial cells."""
    if "concentration_task" in posterior:
        return draws(posterior, "concentration_task")
    if "concentration_dataset" in posterior:
        return draws(posterior, "concentration_dataset")[task_dataset]
    return None


def position(posterior: xr.Dataset) -> tuple[np.ndarray, str]:
    """Position bias draws and their scope (model/choice.py: first_choice_z): per ordered
    dataset pair ((dataset, dataset, draws)), per dataset ((dataset, draws)) or global."""
    if "position_bias_pair" in posterior:
        return draws(posterior, "position_bias_pair"), "pair"
    if "position_bias_dataset" in posterior:
        return draws(posterior, "position_bias_dataset"), "dataset"
    if "position_bias" in posterior:
        return draws(posterior, "position_bias"), "global"
    return np.zeros(n_samples(posterior)), "global"
