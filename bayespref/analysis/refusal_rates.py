"""Refusals among completions: each completion classified, and per-task refusal rates.

A completion is classified by the rule-based classifier (`collect/parse.py: is_refusal`, a
pattern in the opening of the text) and, when given, by an LLM judge's ratings written by
`bayespref judge --protocol refusal-judge` (1 = refused). A task's refusal rate is the share of
its completions that refuse, with a Jeffreys interval (Beta(k + 1/2, n - k + 1/2) quantiles),
which stays inside [0, 1] and is sensible at 0 of n.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import beta

from bayespref.analysis.summaries import INTERVAL_TAILS
from bayespref.collect.parse import is_refusal
from bayespref.errors import DataError
from bayespref.io.locations import where
from bayespref.io.tables import read_table, require_columns

COMPLETION_KEYS = ("completion_id", "task_id", "dataset", "author_model", "condition")
METHODS = ("rule", "judge")


def classify_refusals(
    completions: pd.DataFrame,
    judged: pd.DataFrame | None = None,
    source: str = "<completions>",
    judged_source: str = "<ratings>",
) -> pd.DataFrame:
    """One row per completion: its keys, `refusal_rule` and, with judged ratings, `refusal_judge`
    (the mean of the judge's parsed answers; NaN where none parsed) and `judge_model`."""
    require_columns(completions, (*COMPLETION_KEYS, "completion"), source)
    table = completions[list(COMPLETION_KEYS)].copy()
    table["refusal_rule"] = completions["completion"].fillna("").astype(str).map(is_refusal)
    if judged is None:
        return table
    require_columns(judged, ("completion_id", "rating", "protocol", "model"), judged_source)
    other = judged["protocol"].astype(str) != "refusal-judge"
    if other.any():
        row = int(np.flatnonzero(other.to_numpy())[0]) + 1
        raise DataError(
            f"{where(judged_source, row, 'protocol')}: '{judged['protocol'].iloc[row - 1]}' is "
            "not refusal-judge (judge with --protocol refusal-judge)"
        )
    votes = judged.groupby("completion_id").agg(
        refusal_judge=("rating", "mean"), judge_model=("model", "first")
    )
    unknown = ~votes.index.isin(table["completion_id"])
    if unknown.any():
        raise DataError(
            f"{where(judged_source, column='completion_id')}: '{votes.index[unknown][0]}' is not "
            f"in {source}"
        )
    return table.merge(votes, left_on="completion_id", right_index=True, how="left")


def refusal_rates(
    classified: pd.DataFrame, method: str = "rule", by: Sequence[str] = ("task_id", "dataset")
) -> pd.DataFrame:
    """Per group (default: per task): `n` classified completions, `refusals`, `rate` and the
    94% Jeffreys interval `low`, `high`. `method` is `rule` or `judge` (rounded judge votes)."""
    if method not in METHODS:
        raise DataError(f"unknown refusal method '{method}'; choose one of {', '.join(METHODS)}")
    column = f"refusal_{method}"
    if column not in classified.columns:
        raise DataError(f"no '{column}' column: pass the judge's ratings to classify_refusals")
    values = classified[column].astype(float)
    frame = classified.assign(refused=(values >= 0.5).astype(float).where(values.notna()))
    frame = frame.dropna(subset=["refused"])
    grouped = frame.groupby(list(by), sort=True)["refused"].agg(["size", "sum"]).reset_index()
    grouped = grouped.rename(columns={"size": "n", "sum": "refusals"})
    n, k = grouped["n"].to_numpy(float), grouped["refusals"].to_numpy(float)
    grouped["refusals"] = k.astype(int)
    grouped["rate"] = k / n
    grouped["low"] = beta.ppf(INTERVAL_TAILS[0], k + 0.5, n - k + 0.5)
    grouped["high"] = beta.ppf(INTERVAL_TAILS[1], k + 0.5, n - k + 0.5)
    grouped["method"] = method
    return grouped


def _read_per_task(
    path: str | Path | pd.DataFrame, columns: tuple[str, ...], integers: bool = False
) -> tuple[pd.DataFrame, str]:
    """A per-task table written by `bayespref refusals` (or taken as a frame), its `columns`
    numbers (whole numbers with `integers`): the judge's rows where the `method` column holds
    both, one row per task. The index keeps each row's 0-based place in the file."""
    source = "<refusal rates>" if isinstance(path, pd.DataFrame) else str(path)
    table = path.reset_index(drop=True) if isinstance(path, pd.DataFrame) else read_table(path)
    require_columns(table, ("task_id", *columns), source)
    if "method" in table.columns and table["method"].nunique() > 1:
        table = table[table["method"] == "judge"]
    table = table.assign(task_id=table["task_id"].astype(str))
    if table["task_id"].duplicated().any():
        task = table.loc[table["task_id"].duplicated(), "task_id"].iloc[0]
        raise DataError(
            f"{where(source, column='task_id')}: task '{task}' has several rates; write them "
            "per task (`bayespref refusals` without --by)"
        )
    for column in columns:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() & table[column].notna()
        what = "a number"
        if integers:
            bad = values.isna() | (values < 0) | (values % 1 != 0)
            what = "a whole number of completions"
        if bad.any():
            row = int(table.index[np.flatnonzero(bad.to_numpy())[0]])
            raise DataError(
                f"{where(source, row + 1, column)}: '{table[column].loc[row]}' is not {what}"
            )
        table[column] = values
    return table, source


def read_refusal_rates(path: str | Path) -> pd.DataFrame:
    """Per-task refusal rates written by `bayespref refusals` (`task_id, rate, low, high`, and a
    `method`: the judge's where both are there), one row per task, rates as numbers."""
    table, _ = _read_per_task(path, ("rate", "low", "high"))
    return table[["task_id", "rate", "low", "high"]].reset_index(drop=True)


def read_refusal_counts(path: str | Path | pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """Per-task refusal counts of completions from the table `bayespref refusals` writes (or a
    frame with its columns): `task_id`, `n` completions, `refusals` among them, and `dataset`
    when the table has it (`method` as in `read_refusal_rates`), indexed by each row's 0-based
    place in the table; and the table's name for errors. Counts are whole numbers with
    refusals <= n."""
    table, source = _read_per_task(path, ("n", "refusals"), integers=True)
    over = table["refusals"] > table["n"]
    if over.any():
        row = int(table.index[np.flatnonzero(over.to_numpy())[0]])
        raise DataError(
            f"{where(source, row + 1, 'refusals')}: {int(table['refusals'].loc[row])} refusals "
            f"of {int(table['n'].loc[row])} completions"
        )
    columns = ["task_id", "n", "refusals"] + (["dataset"] if "dataset" in table.columns else [])
    return table[columns].astype({"n": np.int64, "refusals": np.int64}), source
