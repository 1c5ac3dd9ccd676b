"""Validated trials counted chunk by chunk into cells, in memory that follows the number of
distinct (task_a, task_b, condition) cells and of tasks rather than the number of trials."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import numpy as np
import pandas as pd

CHOICES = ("a", "b", "refusal", "unparsed")
CELL = ["task_a", "task_b", "condition"]
HASHED = ["task_a", "task_b", "condition", "choice", "dataset_a", "dataset_b"]
_CODES = ["a_code", "b_code", "condition_code"]
_BLOCK = 200_000  # rows merged or written to CSV at a time


class TrialCounts:
    """Trials per cell and outcome, the order in which tasks first appear and each task's
    dataset. `add` takes validated chunks in table order; ids are kept as integer codes."""

    def __init__(self) -> None:
        self.n_trials = 0
        self._tasks = pd.Index([], dtype=str)  # the code of a task is its position here
        self._conditions = pd.Index([], dtype=str)
        self._first_a = pd.Index([], dtype=str)  # tasks in order of first appearance as task_a
        self._first_b = pd.Index([], dtype=str)
        self._dataset = pd.Series([], dtype=str)
        self._parts: list[pd.DataFrame] = []
        self._merged_rows = 0

    def add(self, trials: pd.DataFrame) -> None:
        self.n_trials += len(trials)
        self._first_a = _append_new(self._first_a, trials["task_a"])
        self._first_b = _append_new(self._first_b, trials["task_b"])
        self._tasks = _append_new(self._tasks, pd.concat([trials["task_a"], trials["task_b"]]))
        self._conditions = _append_new(self._conditions, trials["condition"])
        sides = [
            trials[[f"task_{side}", f"dataset_{side}"]].set_axis(["task", "dataset"], axis=1)
            for side in ("a", "b")
        ]
        seen = pd.concat(sides).drop_duplicates("task").set_index("task")["dataset"]
        new = seen[~seen.index.isin(self._dataset.index)]
        self._dataset = pd.concat([self._dataset, new]) if len(new) else self._dataset
        choice = trials["choice"].to_numpy()
        coded = pd.DataFrame(
            {
                "a_code": self._tasks.get_indexer(trials["task_a"]).astype(np.int32),
                "b_code": self._tasks.get_indexer(trials["task_b"]).astype(np.int32),
                "condition_code": self._conditions.get_indexer(trials["condition"]).astype(
                    np.int32
                ),
                **{outcome: (choice == outcome).astype(np.int64) for outcome in CHOICES},
            }
        )
        self._parts.append(_summed(coded))
        # Merge when the unmerged parts outgrow the merged counts: amortised linear time.
        if sum(map(len, self._parts[1:])) > max(self._merged_rows, _BLOCK):
            self._merge()

    def _merge(self) -> None:
        merged = _summed(pd.concat(self._parts, ignore_index=True)) if self._parts else None
        self._parts = [] if merged is None else [merged]
        self._merged_rows = 0 if merged is None else len(merged)

    def tasks(self) -> np.ndarray:
        """Task ids in order of first appearance: first as task_a down the table, then the tasks
        only ever shown second."""
        return self._first_a.append(self._first_b.difference(self._first_a, sort=False)).to_numpy()

    @property
    def dataset_of(self) -> pd.Series:
        return self._dataset

    def outcomes(self) -> pd.DataFrame:
        """One row per (task_a, task_b, condition), sorted by them, with a column of trials per
        outcome in CHOICES."""
        self._merge()
        counts = self._parts[0] if self._parts else pd.DataFrame(columns=_CODES + list(CHOICES))
        task_rank, condition_rank = _ranks(self._tasks), _ranks(self._conditions)
        codes = {column: counts[column].to_numpy(np.int64) for column in _CODES}
        order = np.lexsort(
            (
                condition_rank[codes["condition_code"]],
                task_rank[codes["b_code"]],
                task_rank[codes["a_code"]],
            )
        )
        table = pd.DataFrame(
            {
                "task_a": self._tasks.take(codes["a_code"][order]),
                "task_b": self._tasks.take(codes["b_code"][order]),
                "condition": self._conditions.take(codes["condition_code"][order]),
            }
        )
        for outcome in CHOICES:
            table[outcome] = counts[outcome].to_numpy(np.int64)[order]
        return table


def _append_new(order: pd.Index, values: pd.Series) -> pd.Index:
    unique = pd.Index(pd.unique(values))
    return order.append(unique[~unique.isin(order)])


def _summed(coded: pd.DataFrame) -> pd.DataFrame:
    return coded.groupby(_CODES, sort=False, as_index=False).sum()


def _ranks(values: pd.Index) -> np.ndarray:
    """Each value's position in sorted order (string order, as a sort of the ids gives)."""
    ranks = np.empty(len(values), dtype=np.int64)
    ranks[values.argsort()] = np.arange(len(values))
    return ranks


def _trial_blocks(outcomes: pd.DataFrame, dataset_of: pd.Series) -> Iterator[pd.DataFrame]:
    """The trials, one row each in HASHED columns, sorted by them, a block of rows at a time."""
    counts = outcomes[list(CHOICES)].to_numpy(np.int64)
    for start in range(0, len(outcomes), _BLOCK):
        block = outcomes.iloc[start : start + _BLOCK]
        # (cell, outcome) pairs in row-major order are in HASHED order: cells are sorted,
        # CHOICES are in string order and datasets follow from the tasks.
        flat = counts[start : start + _BLOCK].ravel()
        ends = np.cumsum(flat)
        starts = ends - flat
        for low in range(0, int(ends[-1]) if len(ends) else 0, _BLOCK):
            high = low + _BLOCK
            pairs = np.arange(np.searchsorted(ends, low, "right"), np.searchsorted(starts, high))
            repeats = np.minimum(ends[pairs], high) - np.maximum(starts[pairs], low)
            cells = block.iloc[np.repeat(pairs // len(CHOICES), repeats)]
            yield pd.DataFrame(
                {
                    "task_a": cells["task_a"].to_numpy(),
                    "task_b": cells["task_b"].to_numpy(),
                    "condition": cells["condition"].to_numpy(),
                    "choice": np.asarray(CHOICES)[np.repeat(pairs % len(CHOICES), repeats)],
                    "dataset_a": cells["task_a"].map(dataset_of).to_numpy(),
                    "dataset_b": cells["task_b"].map(dataset_of).to_numpy(),
                }
            )


def trials_hash(outcomes: pd.DataFrame, dataset_of: pd.Series) -> str:
    """sha256 (first 16 hex digits) of the trials written as a CSV sorted by HASHED, one line per
    trial (so the order of rows in the table does not matter), from `TrialCounts.outcomes`."""
    digest = hashlib.sha256(pd.DataFrame(columns=HASHED).to_csv(index=False).encode())
    for block in _trial_blocks(outcomes, dataset_of):
        digest.update(block.to_csv(index=False, header=False).encode())
    return digest.hexdigest()[:16]
