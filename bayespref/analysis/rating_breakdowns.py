"""Stated ratings broken down instead of pooled: by rater x author, by condition, by dataset.

Each row holds the number of parsed ratings, their mean and its standard error, per model,
template and scale (ratings on different scales are never averaged together).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayespref.data.comparisons import DEFAULT_CONDITION

SCALE_GROUP = ["template", "scale"]


def _mean_table(ratings: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    rated = ratings.dropna(subset=["rating"])
    grouped = rated.groupby(list(by), sort=True)["rating"]
    table = grouped.agg(n="size", mean="mean", sd="std").reset_index()
    table["se"] = table["sd"] / np.sqrt(table["n"])
    return table.drop(columns="sd")


def rater_author_table(ratings: pd.DataFrame) -> pd.DataFrame | None:
    """Mean rating per rater and author (None without `rater_model` and `author_model`), with
    `self` marking the cells where a rater rates its own completions."""
    if not {"rater_model", "author_model"} <= set(ratings.columns):
        return None
    table = _mean_table(ratings, ["rater_model", "author_model", *SCALE_GROUP])
    table["self"] = table["rater_model"] == table["author_model"]
    return table


def breakdown(ratings: pd.DataFrame, column: str) -> pd.DataFrame | None:
    """Mean rating per model, template, scale and `column` (condition or dataset); None when
    the column is absent. A missing condition reads as the default one."""
    if column not in ratings.columns:
        if column != "condition":
            return None
        ratings = ratings.assign(condition=DEFAULT_CONDITION)
    model = ["model"] if "model" in ratings.columns else []
    return _mean_table(ratings, [*model, *SCALE_GROUP, column])
