"""Numbers behind the report: position win rates, refusal rates and their link to utility.

Array maths stays in small functions; the tables they return are what the report writes as CSV.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from bayespref.analysis.summaries import INTERVAL, INTERVAL_TAILS

RATE_COLUMNS = ["group", "wins", "trials", "rate", "low", "high"]


def wilson_interval(
    wins: np.ndarray, trials: np.ndarray, mass: float = INTERVAL
) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a binomial proportion; NaN where there are no trials."""
    wins, trials = np.asarray(wins, float), np.asarray(trials, float)
    z = norm.ppf(0.5 + mass / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = wins / trials
        centre = (share + z**2 / (2 * trials)) / (1 + z**2 / trials)
        half = (
            z * np.sqrt(share * (1 - share) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
        )
    return centre - half, centre + half


def choice_cells(comparisons: pd.DataFrame) -> pd.DataFrame:
    """Choice trials of a comparisons table (with datasets) as `dataset_a, dataset_b, n, k`,
    k = 1 when the first-shown task was chosen."""
    chosen = comparisons[comparisons["choice"].isin(["a", "b"])]
    return pd.DataFrame(
        {
            "dataset_a": chosen["dataset_a"].astype(str).to_numpy(),
            "dataset_b": chosen["dataset_b"].astype(str).to_numpy(),
            "n": 1,
            "k": (chosen["choice"] == "a").astype(int).to_numpy(),
        }
    )


def position_win_rates(cells: pd.DataFrame) -> pd.DataFrame:
    """Share of choice trials won by the first-shown task, with 94% Wilson intervals: overall
    (`all`) and per dataset over the trials whose two tasks both belong to it (pairs across
    datasets would mix position with the datasets' utility gap). `cells` has `dataset_a,
    dataset_b, n, k` (see `choice_cells`)."""
    within = cells[cells["dataset_a"] == cells["dataset_b"]]
    groups = within.groupby("dataset_a", sort=True)[["k", "n"]].sum()
    wins = np.concatenate([[cells["k"].sum()], groups["k"].to_numpy()])
    trials = np.concatenate([[cells["n"].sum()], groups["n"].to_numpy()])
    low, high = wilson_interval(wins, trials)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = wins / trials
    names = ["all"] + [str(name) for name in groups.index]
    return pd.DataFrame(
        dict(zip(RATE_COLUMNS, [names, wins, trials, rate, low, high], strict=True))
    )


def refusal_rates(task_counts: pd.DataFrame) -> pd.DataFrame:
    """Per task: refused trials over trials offered (choices + refusals), with Wilson intervals.
    Unparsed answers are left out of both counts."""
    offered = task_counts["n_trials"] + task_counts["n_refusal"]
    low, high = wilson_interval(task_counts["n_refusal"], offered)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate = task_counts["n_refusal"] / offered
    return pd.DataFrame(
        {
            "task_id": task_counts["task_id"].astype(str),
            "refusals": task_counts["n_refusal"],
            "offered": offered,
            "rate": rate,
            "low": low,
            "high": high,
        }
    )


def correlation_draws(values: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """Pearson r between `values` (task,) and each column of `draws` (task, samples)."""
    x = values - values.mean()
    y = draws - draws.mean(axis=0, keepdims=True)
    return (x @ y) / np.sqrt((x @ x) * (y * y).sum(axis=0))


def refusal_utility_correlation(rates: pd.Series, mu_draws: np.ndarray) -> dict[str, float]:
    """Distribution over posterior draws of Pearson r between observed refusal rates and utility.

    `rates` (task,) and `mu_draws` (task, samples) in the same task order; tasks never offered
    (rate NaN) are left out. Returns mean, 94% interval and the number of tasks used."""
    keep = np.isfinite(np.asarray(rates, float))
    r = correlation_draws(np.asarray(rates, float)[keep], mu_draws[keep])
    low, high = np.quantile(r, INTERVAL_TAILS)
    return {
        "mean": float(r.mean()),
        "low": float(low),
        "high": float(high),
        "n_tasks": int(keep.sum()),
    }
