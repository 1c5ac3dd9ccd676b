"""Plain tables from a posterior: utilities per task and global parameters."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import xarray as xr

from bayespref.posterior import draws as post

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


def _interval(draws: np.ndarray) -> dict[str, np.ndarray]:
    low, high = np.quantile(draws, INTERVAL_TAILS, axis=-1)
    return {"mean": draws.mean(axis=-1), "sd": draws.std(axis=-1, ddof=1), "low": low, "high": high}


def utilities_table(
    posterior: xr.Dataset, tasks: pd.DataFrame, n_trials: np.ndarray
) -> pd.DataFrame:
    """Posterior mean, sd and 94% equal-tailed interval of each task's utility and noise.

    With condition shifts there is one row per (task, condition) and a `condition` column;
    `n_trials` is then shaped (condition, task). With modelled refusals, the per-task refusal
    propensity (logit scale) is added as `refusal_mean`, `refusal_sd`, `refusal_low`,
    `refusal_high`; with a per-task lapse, the task's lapse rate as `lapse_mean`, `lapse_sd`,
    `lapse_low`, `lapse_high`; with pair effects by task, their sd as `pair_sd_mean`, ...; with
    beta-binomial cells by task, the task's concentration as `concentration_mean`, ...."""
    sigma = _interval(post.task_sigma(posterior, tasks["dataset_idx"].to_numpy()))
    base = pd.DataFrame({"task_id": tasks["task_id"].to_numpy(), "dataset": tasks["dataset"]})
    base = base.assign(sigma_mean=sigma["mean"], sigma_sd=sigma["sd"])
    if "refusal_propensity" in posterior:
        refusal = _interval(post.draws(posterior, "refusal_propensity"))
        base = base.assign(**{f"refusal_{key}": value for key, value in refusal.items()})
    per_task = (
        ("lapse_task", "lapse"),
        ("pair_sd_task", "pair_sd"),
        ("concentration_task", "concentration"),
    )
    for name, prefix in per_task:
        if name in posterior:
            values = _interval(post.draws(posterior, name))
            base = base.assign(**{f"{prefix}_{key}": value for key, value in values.items()})
    extra = [c for c in base.columns if c.startswith(("refusal_", *(p + "_" for _, p in per_task)))]
    if "mu_condition" not in posterior:
        mu = _interval(post.draws(posterior, "mu"))
        table = base.assign(**{f"mu_{key}": value for key, value in mu.items()})
        return table.assign(n_trials=np.asarray(n_trials, dtype=np.int64))[UTILITY_COLUMNS + extra]
    frames = []
    mu = post.draws(posterior, "mu_condition")
    for index, condition in enumerate(posterior["condition"].values):
        by_condition = _interval(mu[index])
        frames.append(
            base.assign(
                condition=condition, n_trials=np.asarray(n_trials[index], dtype=np.int64)
            ).assign(**{f"mu_{key}": value for key, value in by_condition.items()})
        )
    columns = UTILITY_COLUMNS[:2] + ["condition"] + UTILITY_COLUMNS[2:] + extra
    return pd.concat(frames, ignore_index=True)[columns]


def params_table(posterior: xr.Dataset, r_hat: xr.Dataset, ess_bulk: xr.Dataset) -> pd.DataFrame:
    """One row per global, per-dataset or per-condition parameter; per-task variables live in
    utilities.csv."""
    rows = []
    for name in post.reported_variables(posterior):
        array = posterior[name]
        if "task" in array.dims:
            continue
        dims = [dim for dim in array.dims if dim not in ("chain", "draw")]
        values = post.draws(posterior, name).reshape(-1, post.n_samples(posterior))
        labels = [
            f"{name}[{', '.join(map(str, combination))}]" if dims else name
            for combination in itertools.product(*(posterior[dim].values for dim in dims))
        ]
        r_hats = np.ravel(r_hat[name].values)
        esses = np.ravel(ess_bulk[name].values)
        for label, row, rh, ess in zip(labels, values, r_hats, esses, strict=True):
            low, high = np.quantile(row, INTERVAL_TAILS)
            rows.append([label, row.mean(), row.std(ddof=1), low, high, float(rh), float(ess)])
    return pd.DataFrame(rows, columns=PARAM_COLUMNS)


def noise_by_dataset(posterior: xr.Dataset, datasets: list[str]) -> pd.DataFrame:
    """Per dataset, the posterior mean and 94% interval of its noise level `sigma_*` (the
    geometric mean of its tasks' noise under per-task noise), of its utility spread in units of
    its own noise `spread_over_sigma_*` (what choices within the dataset identify even when its
    noise and spread trade off), with a per-task lapse of its tasks' mean lapse rate `lapse_*`,
    with pair effects by dataset or task of their sd `pair_sd_*` (by task: the geometric
    mean of its tasks'), and with beta-binomial cells of their concentration `concentration_*`
    (small: repeats of a pair agree beyond their probability). Empty when noise is shared and
    there is no per-task lapse."""
    table = pd.DataFrame({"dataset": datasets})
    wanted = (
        "sigma_dataset",
        "dataset_spread",
        "lapse_dataset",
        "pair_sd_dataset",
        "concentration_dataset",
    )
    found = {name: post.draws(posterior, name) for name in wanted if name in posterior}
    columns = {"sigma": found.get("sigma_dataset")}
    if "sigma_dataset" in found and "dataset_spread" in found:
        columns["spread_over_sigma"] = found["dataset_spread"] / found["sigma_dataset"]
    columns["lapse"] = found.get("lapse_dataset")
    columns["pair_sd"] = found.get("pair_sd_dataset")
    columns["concentration"] = found.get("concentration_dataset")
    for prefix, values in columns.items():
        if values is not None:
            summary = _interval(values)
            table = table.assign(**{f"{prefix}_{key}": summary[key] for key in summary})
    return table if len(table.columns) > 1 else table.iloc[:0]
