"""Refusals among each task's completions, lined up with a fit's tasks.

The counts come from the table `bayespref refusals` writes (read by
`analysis/refusal_rates.py: read_refusal_counts`); a model with refusals modelled observes them
through the same per-task propensity as the refusals in choice trials (model/builder.py).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from bayespref.errors import DataError
from bayespref.io.locations import listing, where


@dataclass(frozen=True)
class CompletionRefusals:
    """Per task with completions (model order): its index among the fit's tasks, `n`
    completions and `refusals` among them; `source` names the table, `left_out` the task ids
    it has that the comparisons do not."""

    task_idx: np.ndarray
    n: np.ndarray
    refusals: np.ndarray
    source: str
    left_out: tuple[str, ...] = ()

    @property
    def hash(self) -> str:
        """What the model saw of the table: two fits agree on it when these agree."""
        rows = np.stack([self.task_idx, self.n, self.refusals]).astype(np.int64)
        return hashlib.sha256(rows.tobytes()).hexdigest()[:16]


def align_completion_refusals(
    counts: pd.DataFrame, tasks: pd.DataFrame, source: str
) -> CompletionRefusals:
    """Line up per-task counts (`task_id`, `n`, `refusals`, optional `dataset`; the index is
    each row's 0-based place in `source`) with a fit's tasks (`task_id`, `dataset` in model
    order).

    Tasks without completions are fine: their propensity is informed by choices alone. Tasks of
    the table that are not in the comparisons are left out and listed (completions are often made
    for a whole tasks table and choices asked about part of it, which `fit` also accepts); a
    table that shares no task with the comparisons is an error, as is a task whose dataset
    differs from the comparisons'."""
    index_of = pd.Series(np.arange(len(tasks)), index=tasks["task_id"].astype(str).to_numpy())
    ids = counts["task_id"].astype(str)
    known = ids.isin(index_of.index).to_numpy()
    if not known.any():
        raise DataError(
            f"{where(source, column='task_id')}: no task is in the comparisons (the table has "
            f"{listing(list(ids))}); is it the refusal rates of these tasks' completions?"
        )
    idx = index_of.reindex(ids[known]).to_numpy(np.int64)
    if "dataset" in counts.columns:
        expected = tasks["dataset"].astype(str).to_numpy()[idx]
        given = counts.loc[known, "dataset"].astype(str).to_numpy()
        wrong = np.flatnonzero(given != expected)
        if len(wrong):
            row = int(counts.index[np.flatnonzero(known)[wrong[0]]]) + 1
            raise DataError(
                f"{where(source, row, 'dataset')}: task '{ids[known].iloc[wrong[0]]}' is in "
                f"dataset '{given[wrong[0]]}' here and '{expected[wrong[0]]}' in the comparisons"
            )
    order = np.argsort(idx)
    return CompletionRefusals(
        task_idx=idx[order],
        n=counts.loc[known, "n"].to_numpy(np.int64)[order],
        refusals=counts.loc[known, "refusals"].to_numpy(np.int64)[order],
        source=source,
        left_out=tuple(ids[~known]),
    )
