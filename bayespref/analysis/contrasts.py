"""Contrasts between two fits of the same tasks: pre- against post-task utilities, one model
against another, a condition against the baseline.

The correlation's interval carries both uncertainties: each draw resamples the shared tasks
(which tasks happened to be studied) and draws every utility from its posterior (mean, sd),
then takes the Pearson correlation; the interval is the draws' 94% quantiles. Position bias
compares protocols twice: by the observed share of choices won by the first-shown task, free of
any model, and by the difference of the fits' global position terms over independent draws.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayespref.analysis.summaries import INTERVAL_TAILS
from bayespref.errors import DataError
from bayespref.io.tables import read_table, require_columns
from bayespref.posterior import draws as post
from bayespref.posterior.fit import Fit

NEEDED = ("task_id", "dataset", "mu_mean", "mu_sd")


def _utilities(table: str | Path | pd.DataFrame, condition: str | None, name: str) -> pd.DataFrame:
    frame = table if isinstance(table, pd.DataFrame) else read_table(table)
    source = name if isinstance(table, pd.DataFrame) else str(table)
    require_columns(frame, NEEDED, source)
    if "condition" in frame.columns:
        chosen = condition or str(frame["condition"].iloc[0])
        frame = frame[frame["condition"].astype(str) == chosen]
        if frame.empty:
            raise DataError(f"{source}: no rows of condition '{chosen}'")
    return frame.assign(task_id=frame["task_id"].astype(str))[list(NEEDED)]


def utility_contrast(
    first: str | Path | pd.DataFrame,
    second: str | Path | pd.DataFrame,
    condition_first: str | None = None,
    condition_second: str | None = None,
    draws: int = 2000,
    seed: int = 0,
) -> tuple[dict[str, float], pd.DataFrame]:
    """(correlation summary, per-dataset means) of two fits' utilities over their shared tasks.

    The summary holds `n_tasks`, `pearson` (the median of the draws' correlations, with
    `pearson_low`, `pearson_high`), `pearson_of_means` and `spearman` (of posterior means). The
    draws treat the fits' posteriors as independent, as they are for fits of different data (pre-
    against post-task choices); two fits of the same choices share their errors, and their
    correlation is then understated (two models of one data set agree at about 1 in their
    means). The table holds each dataset's mean utility in both fits and their difference.
    Utilities are centred by each fit's own convention, so dataset means compare datasets within
    a fit, not levels across fits."""
    a = _utilities(first, condition_first, "<first>")
    b = _utilities(second, condition_second, "<second>")
    joined = a.merge(b, on=["task_id", "dataset"], suffixes=("_first", "_second"))
    if len(joined) < 3:
        raise DataError(f"only {len(joined)} tasks are in both fits; need 3")
    rng = np.random.default_rng(seed)
    n = len(joined)
    mean_a, sd_a = joined["mu_mean_first"].to_numpy(), joined["mu_sd_first"].to_numpy()
    mean_b, sd_b = joined["mu_mean_second"].to_numpy(), joined["mu_sd_second"].to_numpy()
    picks = rng.integers(n, size=(draws, n))
    x = mean_a[picks] + sd_a[picks] * rng.normal(size=(draws, n))
    y = mean_b[picks] + sd_b[picks] * rng.normal(size=(draws, n))
    x, y = x - x.mean(axis=1, keepdims=True), y - y.mean(axis=1, keepdims=True)
    r = (x * y).sum(axis=1) / np.sqrt((x * x).sum(axis=1) * (y * y).sum(axis=1))
    low, high = np.nanquantile(r, INTERVAL_TAILS)
    summary = {
        "n_tasks": n,
        "pearson": float(np.nanmedian(r)),
        "pearson_of_means": float(np.corrcoef(mean_a, mean_b)[0, 1]),
        "spearman": float(joined[["mu_mean_first", "mu_mean_second"]].corr("spearman").iloc[0, 1]),
        "pearson_low": float(low),
        "pearson_high": float(high),
    }
    means = joined.groupby("dataset")[["mu_mean_first", "mu_mean_second"]].mean().reset_index()
    means["difference"] = means["mu_mean_second"] - means["mu_mean_first"]
    return summary, means


def position_terms(params: list[tuple[str, pd.DataFrame]]) -> pd.DataFrame:
    """Each fit's position terms (the global one, any per dataset and any per ordered dataset
    pair) from its (label, params table), one row per fit and term: the first-shown task's
    advantage in noise units."""
    rows = []
    for fit, table in params:
        terms = table[table["name"].astype(str).str.startswith("position_bias")]
        rows += [
            {"fit": fit, **row}
            for row in terms[["name", "mean", "sd", "low", "high"]].to_dict("records")
        ]
    return pd.DataFrame(rows, columns=["fit", "name", "mean", "sd", "low", "high"])


def first_shown_win_rate(cells: pd.DataFrame) -> float:
    """The share of a fit's choice trials won by the task shown first."""
    return float(cells["k"].sum() / max(int(cells["n"].sum()), 1))


def position_contrast(first: Fit, second: Fit, seed: int = 0) -> dict[str, float]:
    """Both fits' observed first-shown win rates and their global position terms' difference
    (second minus first, in noise units) with its 94% interval; the posteriors are taken as
    independent, pairing each draw of one with a random draw of the other. Without a position
    term in both fits, the difference is left out."""
    summary = {
        "first_shown_win_rate_first": first_shown_win_rate(first.cells),
        "first_shown_win_rate_second": first_shown_win_rate(second.cells),
    }
    if not ("position_bias" in first.posterior and "position_bias" in second.posterior):
        return summary
    a = post.draws(first.posterior, "position_bias")
    b = post.draws(second.posterior, "position_bias")
    rng = np.random.default_rng(seed)
    size = max(len(a), len(b))
    difference = rng.choice(b, size) - rng.choice(a, size)
    low, high = np.quantile(difference, INTERVAL_TAILS)
    return summary | {
        "position_difference": float(np.mean(difference)),
        "position_difference_low": float(low),
        "position_difference_high": float(high),
    }
