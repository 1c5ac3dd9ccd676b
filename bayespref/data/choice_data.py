"""Validated comparisons prepared for a model: tasks indexed, trials counted into cells."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bayespref.data.cells import CHOICES, HASHED, TrialCounts, trials_hash
from bayespref.data.comparisons import DEFAULT_CONDITION, tasks_frame, validated_chunks
from bayespref.data.completion_refusals import CompletionRefusals
from bayespref.errors import DataError, DataWarning
from bayespref.io.locations import listing, where


def data_hash(comparisons: pd.DataFrame) -> str:
    """Order-independent hash of validated trials (ids, position, condition, outcome, datasets)."""
    counts = TrialCounts()
    counts.add(comparisons[HASHED].astype(str))
    return trials_hash(counts.outcomes(), counts.dataset_of)


@dataclass(frozen=True)
class ChoiceData:
    """Validated comparisons ready for a model: task index, aggregated cells and counts."""

    tasks: pd.DataFrame  # task_id, dataset, dataset_idx; model order
    datasets: list[str]
    conditions: list[str]
    # task_a, task_b, condition, a_idx, b_idx, condition_idx; n choice trials, k of them won by
    # the first-shown task, r refused
    cells: pd.DataFrame
    task_counts: pd.DataFrame  # per task: outcomes of every trial it was in
    data_hash: str
    n_trials: int
    outcome_counts: dict[str, int]
    notes: list[str] = field(default_factory=list)
    # refusals among the tasks' completions, when a fit is given them (workflows/fitting.py)
    completion_refusals: CompletionRefusals | None = None

    @property
    def task_dataset_idx(self) -> np.ndarray:
        return self.tasks["dataset_idx"].to_numpy()


def ordered_conditions(names) -> list[str]:
    """Conditions with the reference first: 'default' when present, else the first by name.
    Condition shifts are measured from the reference."""
    names = sorted(set(names))
    if DEFAULT_CONDITION in names:
        names.remove(DEFAULT_CONDITION)
        names.insert(0, DEFAULT_CONDITION)
    return names


def _task_counts(outcomes: pd.DataFrame, task_ids: pd.Index) -> pd.DataFrame:
    """Per task, the outcomes of every trial it was in, from trials per cell and outcome."""
    counts = pd.DataFrame(
        0,
        index=task_ids,
        columns=["n_trials", "n_wins", "n_losses", "n_shown_first", "n_refusal", "n_unparsed"],
    )
    for side, won, lost in (("task_a", "a", "b"), ("task_b", "b", "a")):
        by_task = outcomes.groupby(side)[list(CHOICES)].sum().reindex(task_ids, fill_value=0)
        counts["n_wins"] += by_task[won]
        counts["n_losses"] += by_task[lost]
        counts["n_refusal"] += by_task["refusal"]
        counts["n_unparsed"] += by_task["unparsed"]
        if side == "task_a":
            counts["n_shown_first"] = by_task.sum(axis=1)
    counts["n_trials"] = counts["n_wins"] + counts["n_losses"]
    counts.index.name = "task_id"
    return counts.reset_index()


def _describe_parts(labels: np.ndarray, task_ids: np.ndarray, shown: int = 3) -> str:
    parts = []
    for label in pd.Series(labels).value_counts().index:
        members = task_ids[labels == label]
        parts.append(f"{len(members)} tasks ({listing(list(members), shown)})")
    return "; ".join(parts)


def _cells(outcomes: pd.DataFrame, index_of: pd.Series, conditions: list[str]) -> pd.DataFrame:
    """One row per (task_a, task_b, condition) with a choice or a refusal: n choice trials, k won
    by the first-shown task, r refused, and the model's indices."""
    counted = outcomes[outcomes[["a", "b", "refusal"]].sum(axis=1) > 0]
    cells = pd.DataFrame(
        {
            "task_a": counted["task_a"],
            "task_b": counted["task_b"],
            "condition": counted["condition"],
            "n": counted["a"] + counted["b"],
            "k": counted["a"],
            "r": counted["refusal"],
        }
    ).reset_index(drop=True)
    cells["a_idx"] = index_of.reindex(cells["task_a"]).to_numpy()
    cells["b_idx"] = index_of.reindex(cells["task_b"]).to_numpy()
    cells["condition_idx"] = cells["condition"].map({c: i for i, c in enumerate(conditions)})
    return cells


def _disconnected(cells: pd.DataFrame, task_ids: np.ndarray) -> str | None:
    """A note when the graph of compared pairs falls into several parts, else None."""
    edges = cells.loc[cells["n"] > 0, ["a_idx", "b_idx"]]
    graph = coo_matrix(
        (np.ones(len(edges)), (edges["a_idx"], edges["b_idx"])), shape=(len(task_ids),) * 2
    )
    n_parts, labels = connected_components(graph, directed=False)
    if n_parts == 1:
        return None
    return (
        f"the comparison graph falls into {n_parts} disconnected parts; utilities are not "
        f"comparable across parts except through the prior: {_describe_parts(labels, task_ids)}"
    )


def prepare(
    comparisons: pd.DataFrame, tasks: pd.DataFrame | None = None, source: str = "<comparisons>"
) -> ChoiceData:
    """Index tasks, aggregate identical (task_a, task_b, condition) trials into counts."""
    return _prepare_chunks([comparisons], tasks, source)


def _prepare_chunks(
    chunks, tasks: pd.DataFrame | None = None, source: str = "<comparisons>"
) -> ChoiceData:
    """Index tasks, aggregate identical (task_a, task_b, condition) trials into counts, taking
    validated comparisons a chunk at a time.

    Each cell counts choice trials (n), first-position wins (k) and refusals (r); unparsed
    answers are only counted per task. Emits a
    DataWarning for tasks never compared and for a comparison graph in several parts.
    """
    counter = TrialCounts()
    for chunk in chunks:
        counter.add(chunk)
    notes: list[str] = []
    seen = counter.tasks()
    if tasks is not None:
        ordered = tasks[tasks["task_id"].isin(set(seen))]["task_id"].to_numpy()
        never = tasks.loc[~tasks["task_id"].isin(set(seen)), "task_id"].tolist()
        if never:
            notes.append(
                f"{len(never)} tasks in the tasks table were never compared and are left out of "
                f"the fit: {listing(never)}"
            )
    else:
        ordered = np.asarray(seen)
    dataset_of = counter.dataset_of
    datasets = sorted(dataset_of.unique())
    task_table = pd.DataFrame(
        {"task_id": ordered, "dataset": dataset_of.reindex(ordered).to_numpy()}
    )
    task_table["dataset_idx"] = task_table["dataset"].map({d: i for i, d in enumerate(datasets)})
    index_of = pd.Series(np.arange(len(ordered)), index=ordered)

    outcomes = counter.outcomes()
    conditions = ordered_conditions(outcomes["condition"].unique())
    cells = _cells(outcomes, index_of, conditions)

    outcome_counts = {c: int(outcomes[c].sum()) for c in CHOICES}
    if cells["n"].sum() == 0:
        raise DataError(
            f"{where(source, column='choice')}: no trial has choice 'a' or 'b' "
            f"(outcomes: {outcome_counts}); there is nothing to fit"
        )
    counts = _task_counts(outcomes, pd.Index(ordered))
    without_choice = counts.loc[counts["n_trials"] == 0, "task_id"].tolist()
    if without_choice:
        notes.append(
            f"{len(without_choice)} tasks appear only in refused or unparsed trials; their utility "
            f"is the prior's: {listing(without_choice)}"
        )
    disconnected = _disconnected(cells, np.asarray(ordered, dtype=str))
    if disconnected:
        notes.append(disconnected)
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=3)
    return ChoiceData(
        tasks=task_table,
        datasets=datasets,
        conditions=conditions,
        cells=cells,
        task_counts=counts,
        data_hash=trials_hash(outcomes, dataset_of),
        n_trials=counter.n_trials,
        outcome_counts=outcome_counts,
        notes=notes,
    )


def load_choice_data(
    comparisons: str | Path | pd.DataFrame,
    tasks: str | Path | pd.DataFrame | None = None,
    pool: bool = False,
) -> ChoiceData:
    """Read (or take), validate and prepare comparisons for fitting, a chunk at a time; `pool`
    accepts several protocols, templates or models in one condition."""
    table, tasks_source = tasks_frame(tasks)
    chunks, source = validated_chunks(comparisons, table, tasks_source, pool)
    return _prepare_chunks(chunks, table, source)
