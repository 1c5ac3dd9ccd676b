"""Data contracts: read, validate and aggregate tasks and comparisons tables.

Every error names the file, the row (1-based data row; for CSV also the file line) and the column.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

CHOICES = ("a", "b", "refusal", "unparsed")
DEFAULT_CONDITION = "default"
DEFAULT_DATASET = "all"
READABLE_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json")


class DataError(ValueError):
    """Input that breaks a data contract; the message names file, row and column."""


class DataWarning(UserWarning):
    """Valid input that limits what a fit can say (uncompared tasks, a disconnected graph)."""


def where(source: str, row: int | None = None, column: str | None = None) -> str:
    """Human-readable location: "file 'x.csv', row 3 (line 4), column 'choice'"."""
    parts = [f"file '{source}'"]
    if row is not None:
        line = f" (line {row + 1})" if source.endswith(".csv") else ""
        parts.append(f"row {row}{line}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)


def _decode_error_row(raw: bytes, offset: int) -> int:
    """1-based data row (header excluded) holding byte `offset` of a CSV/JSONL file."""
    return raw[:offset].count(b"\n")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, Parquet or JSONL table; CSV and JSONL cells stay text, headers are stripped."""
    path = Path(path)
    source = str(path)
    if not path.exists():
        raise DataError(f"{where(source)}: no such file")
    suffix = path.suffix.lower()
    if suffix not in READABLE_SUFFIXES:
        raise DataError(
            f"{where(source)}: unknown file type '{suffix}'; "
            f"use one of {', '.join(READABLE_SUFFIXES)}"
        )
    if suffix == ".parquet":
        try:
            frame = pd.read_parquet(path)
        except Exception as error:  # pyarrow raises several unrelated types
            raise DataError(f"{where(source)}: not a readable Parquet file ({error})") from error
    else:
        raw = path.read_bytes()
        if not raw.strip():
            raise DataError(f"{where(source)}: the file is empty")
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            row = _decode_error_row(raw, error.start)
            where_row = where(source, row if suffix == ".csv" else row + 1)
            raise DataError(
                f"{where_row}: bytes that are not UTF-8 at byte {error.start}; "
                "save the file as UTF-8"
            ) from error
        try:
            if suffix == ".csv":
                frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
            else:
                frame = pd.read_json(io.StringIO(text), lines=True, dtype=False)
        except (pd.errors.ParserError, ValueError) as error:
            message = f"{where(source)}: cannot be parsed as {suffix[1:]} ({error})"
            raise DataError(message) from error
    frame.columns = [str(column).strip() for column in frame.columns]
    if frame.empty:
        raise DataError(f"{where(source)}: the table has a header but no rows")
    return frame.reset_index(drop=True)


def require_columns(frame: pd.DataFrame, columns: tuple[str, ...], source: str) -> None:
    missing = [column for column in columns if column not in frame.columns]
    if not missing:
        return
    header = ",".join(map(str, frame.columns))
    hint = ""
    for delimiter in (";", "\t", "|"):
        if len(frame.columns) == 1 and delimiter in header:
            hint = f"; the header reads '{header}': is the file delimited by {delimiter!r}?"
    raise DataError(
        f"{where(source, column=missing[0])}: required column missing "
        f"(needs {', '.join(columns)}; found {', '.join(map(str, frame.columns))}){hint}"
    )


def text_column(
    frame: pd.DataFrame, column: str, source: str, allow_empty: bool = False
) -> pd.Series:
    """The column as stripped strings; an empty cell is an error naming its row."""
    values = frame[column]
    missing = values.isna()
    values = values.where(~missing, "").astype(str).str.strip()
    empty = values == ""
    if empty.any() and not allow_empty:
        row = int(np.flatnonzero(empty.to_numpy())[0]) + 1
        raise DataError(
            f"{where(source, row, column)}: empty value ({int(empty.sum())} empty in all)"
        )
    return values


def validate_tasks(frame: pd.DataFrame, source: str = "<tasks>") -> pd.DataFrame:
    """Check a tasks table: `task_id` present, non-empty and unique; `dataset` non-empty."""
    require_columns(frame, ("task_id", "dataset"), source)
    tasks = frame.copy()
    tasks["task_id"] = text_column(frame, "task_id", source)
    tasks["dataset"] = text_column(frame, "dataset", source)
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


def _first_bad_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def _resolve_datasets(
    comparisons: pd.DataFrame, tasks: pd.DataFrame | None, source: str, tasks_source: str
) -> pd.DataFrame:
    """Fill `dataset_a`/`dataset_b` from the tasks table or check the columns given."""
    has_columns = {"dataset_a", "dataset_b"} & set(comparisons.columns)
    if tasks is not None:
        lookup = dict(zip(tasks["task_id"], tasks["dataset"], strict=True))
        for side in ("a", "b"):
            ids = comparisons[f"task_{side}"]
            unknown = ~ids.isin(lookup.keys()).to_numpy()
            if unknown.any():
                row = _first_bad_row(unknown)
                raise DataError(
                    f"{where(source, row, f'task_{side}')}: task '{ids.iloc[row - 1]}' is not "
                    f"in the tasks table '{tasks_source}' ({int(unknown.sum())} such rows)"
                )
            given = f"dataset_{side}"
            mapped = ids.map(lookup)
            if given in comparisons.columns:
                stated = text_column(comparisons, given, source, allow_empty=True)
                clash = ((stated != "") & (stated != mapped)).to_numpy()
                if clash.any():
                    row = _first_bad_row(clash)
                    raise DataError(
                        f"{where(source, row, given)}: dataset '{stated.iloc[row - 1]}' "
                        f"disagrees with the tasks table, which puts task '{ids.iloc[row - 1]}' in "
                        f"'{mapped.iloc[row - 1]}'"
                    )
            comparisons[given] = mapped
        return comparisons
    if not has_columns:
        warnings.warn(
            f"{where(source)}: no dataset columns and no tasks table; all tasks are put in one "
            f"dataset '{DEFAULT_DATASET}'",
            DataWarning,
            stacklevel=3,
        )
        comparisons["dataset_a"] = DEFAULT_DATASET
        comparisons["dataset_b"] = DEFAULT_DATASET
        return comparisons
    for side in ("a", "b"):
        column = f"dataset_{side}"
        if column not in comparisons.columns:
            raise DataError(
                f"{where(source, column=column)}: missing dataset column (give both dataset_a and "
                "dataset_b, or a tasks table)"
            )
        comparisons[column] = text_column(comparisons, column, source)
    long = pd.DataFrame(
        {
            "task": pd.concat([comparisons["task_a"], comparisons["task_b"]], ignore_index=True),
            "dataset": pd.concat(
                [comparisons["dataset_a"], comparisons["dataset_b"]], ignore_index=True
            ),
            "row": np.concatenate([np.arange(len(comparisons))] * 2) + 1,
            "column": ["dataset_a"] * len(comparisons) + ["dataset_b"] * len(comparisons),
        }
    )
    first = long.drop_duplicates("task").set_index("task")["dataset"]
    clash = (long["dataset"] != long["task"].map(first)).to_numpy()
    if clash.any():
        bad = long.iloc[int(np.flatnonzero(clash)[0])]
        raise DataError(
            f"{where(source, int(bad['row']), bad['column'])}: task '{bad['task']}' is in dataset "
            f"'{bad['dataset']}' here but in '{first[bad['task']]}' in an earlier row"
        )
    return comparisons


def validate_comparisons(
    frame: pd.DataFrame,
    source: str = "<comparisons>",
    tasks: pd.DataFrame | None = None,
    tasks_source: str = "<tasks>",
) -> pd.DataFrame:
    """Check a comparisons table against the contract and return it with datasets and condition.

    Choices are matched after stripping spaces and lower-casing ("  A " reads as "a").
    """
    require_columns(frame, ("task_a", "task_b", "choice"), source)
    comparisons = frame.copy()
    comparisons["task_a"] = text_column(frame, "task_a", source)
    comparisons["task_b"] = text_column(frame, "task_b", source)
    choice = text_column(frame, "choice", source, allow_empty=True).str.lower()
    unknown = ~choice.isin(CHOICES).to_numpy()
    if unknown.any():
        row = _first_bad_row(unknown)
        raise DataError(
            f"{where(source, row, 'choice')}: unknown choice '{frame['choice'].iloc[row - 1]}'; "
            f"expected one of {', '.join(CHOICES)} ({int(unknown.sum())} such rows)"
        )
    comparisons["choice"] = choice
    same = (comparisons["task_a"] == comparisons["task_b"]).to_numpy()
    if same.any():
        row = _first_bad_row(same)
        raise DataError(
            f"{where(source, row, 'task_b')}: task '{comparisons['task_a'].iloc[row - 1]}' is "
            f"compared with itself ({int(same.sum())} such rows)"
        )
    if "condition" in comparisons.columns:
        comparisons["condition"] = text_column(frame, "condition", source)
    else:
        comparisons["condition"] = DEFAULT_CONDITION
    return _resolve_datasets(comparisons, tasks, source, tasks_source)


def _tasks_frame(tasks: str | Path | pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    if tasks is None:
        return None, "<tasks>"
    if isinstance(tasks, pd.DataFrame):
        return validate_tasks(tasks), "<tasks>"
    return read_tasks(tasks), str(tasks)


def _validated(
    comparisons: str | Path | pd.DataFrame, tasks: pd.DataFrame | None, tasks_source: str
) -> tuple[pd.DataFrame, str]:
    if isinstance(comparisons, pd.DataFrame):
        source = "<comparisons>"
        return validate_comparisons(comparisons, source, tasks, tasks_source), source
    source = str(comparisons)
    return validate_comparisons(read_table(comparisons), source, tasks, tasks_source), source


def read_comparisons(
    comparisons: str | Path | pd.DataFrame, tasks: str | Path | pd.DataFrame | None = None
) -> pd.DataFrame:
    """Read (or take) and validate comparisons, joining datasets from an optional tasks table."""
    return _validated(comparisons, *_tasks_frame(tasks))[0]


def data_hash(comparisons: pd.DataFrame) -> str:
    """Order-independent hash of the trials (ids, position, condition, outcome, datasets)."""
    columns = ["task_a", "task_b", "condition", "choice", "dataset_a", "dataset_b"]
    canonical = comparisons[columns].astype(str).sort_values(columns).to_csv(index=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


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


def _task_counts(comparisons: pd.DataFrame, task_ids: pd.Index) -> pd.DataFrame:
    counts = pd.DataFrame(
        0,
        index=task_ids,
        columns=["n_trials", "n_wins", "n_losses", "n_shown_first", "n_refusal", "n_unparsed"],
    )
    choice = comparisons["choice"]
    for side, won, lost in (("task_a", "a", "b"), ("task_b", "b", "a")):
        ids = comparisons[side]
        for column, outcome in (
            ("n_wins", won),
            ("n_losses", lost),
            ("n_refusal", "refusal"),
            ("n_unparsed", "unparsed"),
        ):
            counts[column] += ids[choice == outcome].value_counts().reindex(task_ids, fill_value=0)
    counts["n_shown_first"] = comparisons["task_a"].value_counts().reindex(task_ids, fill_value=0)
    counts["n_trials"] = counts["n_wins"] + counts["n_losses"]
    counts.index.name = "task_id"
    return counts.reset_index()


def listing(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def _describe_parts(labels: np.ndarray, task_ids: np.ndarray, shown: int = 3) -> str:
    parts = []
    for label in pd.Series(labels).value_counts().index:
        members = task_ids[labels == label]
        parts.append(f"{len(members)} tasks ({listing(list(members), shown)})")
    return "; ".join(parts)


def prepare(
    comparisons: pd.DataFrame, tasks: pd.DataFrame | None = None, source: str = "<comparisons>"
) -> ChoiceData:
    """Index tasks, aggregate identical (task_a, task_b, condition) trials into counts.

    Each cell counts choice trials (n), first-position wins (k) and refusals (r); unparsed
    answers are only counted per task. Emits a
    DataWarning for tasks never compared and for a comparison graph in several parts.
    """
    notes: list[str] = []
    seen = pd.unique(pd.concat([comparisons["task_a"], comparisons["task_b"]], ignore_index=True))
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
    dataset_of = (
        pd.concat(
            [
                comparisons[["task_a", "dataset_a"]].set_axis(["task", "dataset"], axis=1),
                comparisons[["task_b", "dataset_b"]].set_axis(["task", "dataset"], axis=1),
            ]
        )
        .drop_duplicates("task")
        .set_index("task")["dataset"]
    )
    datasets = sorted(dataset_of.unique())
    task_table = pd.DataFrame(
        {"task_id": ordered, "dataset": dataset_of.reindex(ordered).to_numpy()}
    )
    task_table["dataset_idx"] = task_table["dataset"].map({d: i for i, d in enumerate(datasets)})
    index_of = pd.Series(np.arange(len(ordered)), index=ordered)
    conditions = ordered_conditions(comparisons["condition"].unique())

    counted = comparisons[comparisons["choice"].isin(("a", "b", "refusal"))]
    choice = counted["choice"]
    cells = (
        counted.assign(
            first=(choice == "a").astype(np.int64),
            decided=choice.isin(("a", "b")).astype(np.int64),
            refused=(choice == "refusal").astype(np.int64),
        )
        .groupby(["task_a", "task_b", "condition"], sort=True)
        .agg(n=("decided", "sum"), k=("first", "sum"), r=("refused", "sum"))
        .reset_index()
    )
    cells["a_idx"] = index_of.reindex(cells["task_a"]).to_numpy()
    cells["b_idx"] = index_of.reindex(cells["task_b"]).to_numpy()
    cells["condition_idx"] = cells["condition"].map({c: i for i, c in enumerate(conditions)})

    outcome_counts = {c: int((comparisons["choice"] == c).sum()) for c in CHOICES}
    if cells["n"].sum() == 0:
        raise DataError(
            f"{where(source, column='choice')}: no trial has choice 'a' or 'b' "
            f"(outcomes: {outcome_counts}); there is nothing to fit"
        )
    counts = _task_counts(comparisons, pd.Index(ordered))
    without_choice = counts.loc[counts["n_trials"] == 0, "task_id"].tolist()
    if without_choice:
        notes.append(
            f"{len(without_choice)} tasks appear only in refused or unparsed trials; their utility "
            f"is the prior's: {listing(without_choice)}"
        )
    edges = cells[cells["n"] > 0]
    graph = coo_matrix(
        (np.ones(len(edges)), (edges["a_idx"], edges["b_idx"])), shape=(len(ordered),) * 2
    )
    n_parts, labels = connected_components(graph, directed=False)
    if n_parts > 1:
        notes.append(
            f"the comparison graph falls into {n_parts} disconnected parts; utilities are not "
            f"comparable across parts except through the prior: "
            f"{_describe_parts(labels, np.asarray(ordered, dtype=str))}"
        )
    for note in notes:
        warnings.warn(note, DataWarning, stacklevel=2)
    return ChoiceData(
        tasks=task_table,
        datasets=datasets,
        conditions=conditions,
        cells=cells,
        task_counts=counts,
        data_hash=data_hash(comparisons),
        n_trials=len(comparisons),
        outcome_counts=outcome_counts,
        notes=notes,
    )


def load_choice_data(
    comparisons: str | Path | pd.DataFrame, tasks: str | Path | pd.DataFrame | None = None
) -> ChoiceData:
    """Read (or take), validate and prepare comparisons for fitting."""
    tasks_frame, tasks_source = _tasks_frame(tasks)
    frame, source = _validated(comparisons, tasks_frame, tasks_source)
    return prepare(frame, tasks_frame, source)


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write CSV or Parquet atomically (temporary file in the same folder, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    if path.suffix.lower() == ".parquet":
        frame.to_parquet(temporary, index=False)
    else:
        frame.to_csv(temporary, index=False)
    temporary.replace(path)
