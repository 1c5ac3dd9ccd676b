"""The comparisons and tasks contracts: read and validate them, a chunk of rows at a time.

Every error names the file, the row (1-based data row; for CSV also the file line) and the column.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from bayespref.data.cells import CHOICES
from bayespref.errors import DataError, DataWarning
from bayespref.io.locations import first_bad, in_rows, table_row, where
from bayespref.io.tables import iter_table, read_table, require_columns, text_column

DEFAULT_CONDITION = "default"
DEFAULT_DATASET = "all"
# Optional comparisons columns whose absence changes how the rows are read.
_OPTIONAL = ("condition", "dataset_a", "dataset_b")
# One fit measures one protocol, template and model: mixing them is an error unless pooled or
# told apart by `condition`.
UNMIXED = ("protocol", "template", "model")


def validate_tasks(frame: pd.DataFrame, source: str = "<tasks>") -> pd.DataFrame:
    """Check a tasks table: `task_id` present, non-empty and unique; `dataset` non-empty."""
    require_columns(frame, ("task_id", "dataset"), source)
    tasks = frame.copy()
    tasks["task_id"] = text_column(frame, "task_id", source, identifier=True)
    tasks["dataset"] = text_column(frame, "dataset", source, identifier=True)
    duplicated = tasks["task_id"].duplicated(keep=False)
    if duplicated.any():
        rows = np.flatnonzero(duplicated.to_numpy()) + 1
        task = tasks["task_id"].iloc[rows[0] - 1]
        same = [int(r) for r in rows if tasks["task_id"].iloc[r - 1] == task]
        raise DataError(
            f"{where(source, same[1], 'task_id')}: duplicate task_id '{task}' "
            f"(also at row {same[0]})"
        )
    return tasks


def read_tasks(path: str | Path) -> pd.DataFrame:
    """Read and validate a tasks table (`task_id`, `dataset`, optional `prompt` and extras)."""
    return validate_tasks(read_table(path), str(path))


class ComparisonsValidator:
    """Checks comparisons against the contract a chunk at a time and returns each chunk with
    datasets and condition; keeps what spans chunks (each task's dataset, the columns given).

    Choices are matched after stripping spaces and lower-casing ("  A " reads as "a").
    """

    def __init__(
        self,
        source: str = "<comparisons>",
        tasks: pd.DataFrame | None = None,
        tasks_source: str = "<tasks>",
        pool: bool = False,
    ) -> None:
        self.source, self.tasks_source = source, tasks_source
        self.pool = pool
        self.first_seen: dict[tuple[str, str], tuple[str, int]] = {}  # (column, condition)
        self.lookup = (
            None if tasks is None else dict(zip(tasks["task_id"], tasks["dataset"], strict=True))
        )
        self.optional: set[str] | None = None
        self.dataset_of = pd.Series([], dtype=str)  # without a tasks table: as first given

    def __call__(self, frame: pd.DataFrame, rows: range | None = None) -> pd.DataFrame:
        source = self.source
        require_columns(frame, ("task_a", "task_b", "choice"), source)
        self._same_optional_columns(frame, rows)
        comparisons = frame.copy()
        comparisons["task_a"] = text_column(frame, "task_a", source, rows=rows, identifier=True)
        comparisons["task_b"] = text_column(frame, "task_b", source, rows=rows, identifier=True)
        choice = text_column(frame, "choice", source, allow_empty=True, rows=rows).str.lower()
        unknown = ~choice.isin(CHOICES).to_numpy()
        if unknown.any():
            bad = first_bad(unknown)
            raise DataError(
                f"{where(source, table_row(bad, rows), 'choice')}: unknown choice "
                f"'{frame['choice'].iloc[bad]}'; expected one of {', '.join(CHOICES)} "
                f"({int(unknown.sum())} such rows{in_rows(rows)})"
            )
        comparisons["choice"] = choice
        same = (comparisons["task_a"] == comparisons["task_b"]).to_numpy()
        if same.any():
            bad = first_bad(same)
            raise DataError(
                f"{where(source, table_row(bad, rows), 'task_b')}: task "
                f"'{comparisons['task_a'].iloc[bad]}' is compared with itself "
                f"({int(same.sum())} such rows{in_rows(rows)})"
            )
        if "condition" in comparisons.columns:
            comparisons["condition"] = text_column(
                frame, "condition", source, rows=rows, identifier=True
            )
        else:
            comparisons["condition"] = DEFAULT_CONDITION
        if not self.pool:
            self._unmixed(comparisons, rows)
        if self.lookup is not None:
            return self._datasets_from_tasks(comparisons, rows)
        return self._datasets_given(comparisons, rows)

    def _unmixed(self, comparisons: pd.DataFrame, rows: range | None) -> None:
        """Within a condition, one value of each UNMIXED column (empty cells aside)."""
        for column in (c for c in UNMIXED if c in comparisons.columns):
            values = comparisons[column]
            for condition in comparisons["condition"].unique():
                here = (
                    comparisons["condition"] == condition
                ).to_numpy() & values.notna().to_numpy()
                if not here.any():
                    continue
                start = first_bad(here)
                key = (column, str(condition))
                first, row = self.first_seen.setdefault(
                    key, (str(values.iloc[start]), table_row(start, rows))
                )
                other = here & (values.astype(str) != first).to_numpy()
                if other.any():
                    bad = first_bad(other)
                    raise DataError(
                        f"{where(self.source, table_row(bad, rows), column)}: "
                        f"'{values.iloc[bad]}' here but '{first}' in row {row} (condition "
                        f"'{condition}'); a fit measures one {column}: filter the file, pool "
                        "them (--pool), or tell them apart in the condition column"
                    )

    def _same_optional_columns(self, frame: pd.DataFrame, rows: range | None) -> None:
        """A chunk of a JSONL file may bring a key the rows before it lacked."""
        given = {column for column in _OPTIONAL if column in frame.columns}
        if self.optional is None:
            self.optional = given
        for column in sorted(given - self.optional):
            bad = first_bad(frame[column].notna().to_numpy())
            raise DataError(
                f"{where(self.source, table_row(bad, rows), column)}: the column first appears in "
                "this row; earlier rows lack it (give every row the same columns)"
            )

    def _datasets_from_tasks(self, comparisons: pd.DataFrame, rows: range | None) -> pd.DataFrame:
        """Fill `dataset_a`/`dataset_b` from the tasks table, checking any given."""
        source, lookup = self.source, self.lookup
        for side in ("a", "b"):
            ids = comparisons[f"task_{side}"]
            unknown = ~ids.isin(lookup.keys()).to_numpy()
            if unknown.any():
                bad = first_bad(unknown)
                raise DataError(
                    f"{where(source, table_row(bad, rows), f'task_{side}')}: task "
                    f"'{ids.iloc[bad]}' is not in the tasks table '{self.tasks_source}' "
                    f"({int(unknown.sum())} such rows{in_rows(rows)})"
                )
            given = f"dataset_{side}"
            mapped = ids.map(lookup)
            if given in comparisons.columns:
                stated = text_column(comparisons, given, source, allow_empty=True, rows=rows)
                clash = ((stated != "") & (stated != mapped)).to_numpy()
                if clash.any():
                    bad = first_bad(clash)
                    raise DataError(
                        f"{where(source, table_row(bad, rows), given)}: dataset "
                        f"'{stated.iloc[bad]}' disagrees with the tasks table, which puts task "
                        f"'{ids.iloc[bad]}' in '{mapped.iloc[bad]}'"
                    )
            comparisons[given] = mapped
        return comparisons

    def _datasets_given(self, comparisons: pd.DataFrame, rows: range | None) -> pd.DataFrame:
        """Check the dataset columns (one dataset per task), or put every task in one."""
        source = self.source
        if not self.optional & {"dataset_a", "dataset_b"}:
            if rows is None or rows.start == 0:
                warnings.warn(
                    f"{where(source)}: no dataset columns and no tasks table; all tasks are put "
                    f"in one dataset '{DEFAULT_DATASET}'",
                    DataWarning,
                    stacklevel=4,
                )
            comparisons["dataset_a"] = DEFAULT_DATASET
            comparisons["dataset_b"] = DEFAULT_DATASET
            return comparisons
        for side in ("a", "b"):
            column = f"dataset_{side}"
            if column not in comparisons.columns:
                raise DataError(
                    f"{where(source, column=column)}: missing dataset column (give both "
                    "dataset_a and dataset_b, or a tasks table)"
                )
            comparisons[column] = text_column(
                comparisons, column, source, rows=rows, identifier=True
            )
        n = len(comparisons)
        long = pd.DataFrame(
            {
                "task": pd.concat(
                    [comparisons["task_a"], comparisons["task_b"]], ignore_index=True
                ),
                "dataset": pd.concat(
                    [comparisons["dataset_a"], comparisons["dataset_b"]], ignore_index=True
                ),
                "row": np.concatenate([np.arange(n)] * 2),
                "column": ["dataset_a"] * n + ["dataset_b"] * n,
            }
        )
        here = long.drop_duplicates("task").set_index("task")["dataset"]
        new = here[~here.index.isin(self.dataset_of.index)]
        first = pd.concat([self.dataset_of, new]) if len(new) else self.dataset_of
        clash = (long["dataset"] != long["task"].map(first)).to_numpy()
        if clash.any():
            bad = long.iloc[first_bad(clash)]
            raise DataError(
                f"{where(source, table_row(int(bad['row']), rows), bad['column'])}: task "
                f"'{bad['task']}' is in dataset '{bad['dataset']}' here but in "
                f"'{first[bad['task']]}' in an earlier row"
            )
        self.dataset_of = first
        return comparisons


def validate_comparisons(
    frame: pd.DataFrame,
    source: str = "<comparisons>",
    tasks: pd.DataFrame | None = None,
    tasks_source: str = "<tasks>",
    pool: bool = False,
) -> pd.DataFrame:
    """Check a comparisons table against the contract and return it with datasets and condition.

    Choices are matched after stripping spaces and lower-casing ("  A " reads as "a").
    """
    return ComparisonsValidator(source, tasks, tasks_source, pool)(frame)


def tasks_frame(tasks: str | Path | pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    if tasks is None:
        return None, "<tasks>"
    if isinstance(tasks, pd.DataFrame):
        return validate_tasks(tasks), "<tasks>"
    return read_tasks(tasks), str(tasks)


def validated_chunks(
    comparisons: str | Path | pd.DataFrame,
    tasks: pd.DataFrame | None,
    tasks_source: str,
    pool: bool = False,
) -> tuple[Iterator[pd.DataFrame], str]:
    """Validated comparisons, a chunk at a time for a file, and the source they name. `pool`
    accepts several protocols, templates or models in one condition."""
    if isinstance(comparisons, pd.DataFrame):
        source = "<comparisons>"
        validate = ComparisonsValidator(source, tasks, tasks_source, pool)
        return iter([validate(comparisons)]), source
    source = str(comparisons)
    validate = ComparisonsValidator(source, tasks, tasks_source, pool)
    return (validate(chunk, rows) for chunk, rows in iter_table(comparisons)), source


def read_comparisons(
    comparisons: str | Path | pd.DataFrame,
    tasks: str | Path | pd.DataFrame | None = None,
    pool: bool = False,
) -> pd.DataFrame:
    """Read (or take) and validate comparisons, joining datasets from an optional tasks table."""
    chunks = list(validated_chunks(comparisons, *tasks_frame(tasks), pool)[0])
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)
