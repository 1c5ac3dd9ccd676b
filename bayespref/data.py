"""Data contracts: read, validate and aggregate tasks and comparisons tables.

Every error names the file, the row (1-based data row; for CSV also the file line) and the column.
Comparisons files are read, validated and counted into cells a chunk of rows at a time, so that
memory follows the number of cells and tasks, not of trials.
"""

from __future__ import annotations

import codecs
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from bayespref.cells import CHOICES, HASHED, TrialCounts, trials_hash

DEFAULT_CONDITION = "default"
DEFAULT_DATASET = "all"
READABLE_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json", ".yaml", ".yml")
# The reference research pipeline's measurement files name a task's dataset its origin.
_YAML_RENAMES = {"origin_a": "dataset_a", "origin_b": "dataset_b"}
CHUNK_ROWS = 200_000
_BLOCK_BYTES = 1 << 20
# Optional comparisons columns whose absence changes how the rows are read.
_OPTIONAL = ("condition", "dataset_a", "dataset_b")


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


def _ensure_not_blank(path: Path, source: str) -> None:
    with path.open("rb") as handle:
        while block := handle.read(_BLOCK_BYTES):
            if block.strip():
                return
    raise DataError(f"{where(source)}: the file is empty")


def _non_utf8(path: Path, source: str) -> DataError | None:
    """The error naming the row of the first bytes that are not UTF-8, if there are any."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = newlines = 0  # bytes and newlines before the current block
    with path.open("rb") as handle:
        while True:
            block = handle.read(_BLOCK_BYTES)
            pending = decoder.getstate()[0]
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                data = pending + block
                row = newlines + data[: error.start].count(b"\n")
                where_row = where(source, row if path.suffix.lower() == ".csv" else row + 1)
                return DataError(
                    f"{where_row}: bytes that are not UTF-8 at byte "
                    f"{offset - len(pending) + error.start}; save the file as UTF-8"
                )
            if not block:
                return None
            offset += len(block)
            newlines += block.count(b"\n")


def _read_yaml(path: Path, source: str) -> pd.DataFrame:
    """A YAML list of flat mappings (the reference research pipeline's measurement files: one
    `{task_a, task_b, choice, origin_a, origin_b}` per trial) as a table of text cells, with
    `origin_a`/`origin_b` read as `dataset_a`/`dataset_b`."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        with path.open(encoding="utf-8-sig") as handle:
            records = yaml.load(handle, Loader=loader)  # a safe loader: builds no objects
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or error
        raise DataError(f"{where(source)}: not valid YAML{at} ({problem})") from None
    if not isinstance(records, list):
        raise DataError(f"{where(source)}: expected a YAML list of trials, one mapping each")
    for row, record in enumerate(records, start=1):
        if not isinstance(record, dict):
            raise DataError(f"{where(source, row)}: expected a mapping such as {{task_a: ...}}")
        for column, value in record.items():
            if isinstance(value, dict | list):
                raise DataError(f"{where(source, row, str(column))}: expected a single value")
    frame = pd.DataFrame.from_records(records).astype(object)
    frame = frame.where(frame.isna(), frame.astype(str)) if len(frame) else frame
    renames = {old: new for old, new in _YAML_RENAMES.items() if new not in frame.columns}
    return frame.rename(columns=renames)


@contextmanager
def _chunk_reader(path: Path, suffix: str, chunk_rows: int):
    """The format's chunks and, where the format stores it, its number of rows."""
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        with pq.ParquetFile(path) as file:
            batches = file.iter_batches(chunk_rows)
            yield (batch.to_pandas() for batch in batches), file.metadata.num_rows
    elif suffix in (".yaml", ".yml"):
        frame = _read_yaml(path, str(path))
        yield iter([frame]), len(frame)
    elif suffix == ".csv":
        options = {"dtype": str, "keep_default_na": False}
        with pd.read_csv(path, chunksize=chunk_rows, encoding="utf-8-sig", **options) as reader:
            yield reader, None
    else:
        with pd.read_json(
            path, lines=True, dtype=False, chunksize=chunk_rows, encoding="utf-8-sig"
        ) as reader:
            yield reader, None


def iter_table(
    path: str | Path, chunk_rows: int | None = None
) -> Iterator[tuple[pd.DataFrame, range | None]]:
    """Read a CSV, Parquet, JSONL or YAML table a chunk of rows at a time, with each chunk's 0-based
    rows in the table, or None when the chunk is the whole table. CSV and JSONL cells stay
    text, headers are stripped; JSONL chunks carry every key seen so far. Chunks have
    `chunk_rows` rows (CHUNK_ROWS by default), Parquet batches at most that."""
    chunk_rows = chunk_rows or CHUNK_ROWS
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
    if suffix != ".parquet":
        _ensure_not_blank(path, source)
    first, columns = 0, []
    # pyarrow raises several unrelated types
    unreadable = Exception if suffix == ".parquet" else ValueError
    try:
        with _chunk_reader(path, suffix, chunk_rows) as (chunks, total):
            for chunk in chunks:
                chunk.columns = [str(column).strip() for column in chunk.columns]
                columns += [column for column in chunk.columns if column not in columns]
                chunk = chunk.reindex(columns=columns) if chunk.shape[1] < len(columns) else chunk
                if chunk.empty:
                    break
                rows = range(first, first + len(chunk))
                chunk.index = pd.RangeIndex(rows.start, rows.stop)
                complete = len(chunk) == total if total is not None else len(chunk) < chunk_rows
                whole = first == 0 and complete
                yield chunk, None if whole else rows
                first = rows.stop
    except DataError:
        raise
    except UnicodeDecodeError as error:
        raise (_non_utf8(path, source) or DataError(f"{where(source)}: {error}")) from error
    except unreadable as error:
        if suffix == ".parquet":
            message = f"{where(source)}: not a readable Parquet file ({error})"
        else:
            message = f"{where(source)}: cannot be parsed as {suffix[1:]} ({error})"
        raise DataError(message) from error
    if first == 0:
        raise DataError(f"{where(source)}: the table has a header but no rows")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, Parquet or JSONL table; CSV and JSONL cells stay text, headers are stripped."""
    frames = [chunk for chunk, _ in iter_table(path)]
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


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


def _first_bad(mask: np.ndarray) -> int:
    """Position of the first True."""
    return int(np.flatnonzero(mask)[0])


def _row(position: int, rows: range | None) -> int:
    """1-based table row of a position in a chunk whose 0-based table rows are `rows` (None: the
    chunk is the whole table)."""
    return (rows.start if rows else 0) + position + 1


def _among(rows: range | None) -> str:
    """Where a count of bad rows was made: in one chunk of a table read in chunks."""
    return "" if rows is None else f" in rows {rows.start + 1}-{rows.stop}"


def text_column(
    frame: pd.DataFrame,
    column: str,
    source: str,
    allow_empty: bool = False,
    rows: range | None = None,
) -> pd.Series:
    """The column as stripped strings; an empty cell is an error naming its row."""
    values = frame[column]
    missing = values.isna()
    values = values.where(~missing, "").astype(str).str.strip()
    empty = values == ""
    if empty.any() and not allow_empty:
        count = f"{int(empty.sum())} empty {_among(rows)[1:] or 'in all'}"
        raise DataError(
            f"{where(source, _row(_first_bad(empty.to_numpy()), rows), column)}: empty value "
            f"({count})"
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
    ) -> None:
        self.source, self.tasks_source = source, tasks_source
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
        comparisons["task_a"] = text_column(frame, "task_a", source, rows=rows)
        comparisons["task_b"] = text_column(frame, "task_b", source, rows=rows)
        choice = text_column(frame, "choice", source, allow_empty=True, rows=rows).str.lower()
        unknown = ~choice.isin(CHOICES).to_numpy()
        if unknown.any():
            bad = _first_bad(unknown)
            raise DataError(
                f"{where(source, _row(bad, rows), 'choice')}: unknown choice "
                f"'{frame['choice'].iloc[bad]}'; expected one of {', '.join(CHOICES)} "
                f"({int(unknown.sum())} such rows{_among(rows)})"
            )
        comparisons["choice"] = choice
        same = (comparisons["task_a"] == comparisons["task_b"]).to_numpy()
        if same.any():
            bad = _first_bad(same)
            raise DataError(
                f"{where(source, _row(bad, rows), 'task_b')}: task "
                f"'{comparisons['task_a'].iloc[bad]}' is compared with itself "
                f"({int(same.sum())} such rows{_among(rows)})"
            )
        if "condition" in comparisons.columns:
            comparisons["condition"] = text_column(frame, "condition", source, rows=rows)
        else:
            comparisons["condition"] = DEFAULT_CONDITION
        if self.lookup is not None:
            return self._datasets_from_tasks(comparisons, rows)
        return self._datasets_given(comparisons, rows)

    def _same_optional_columns(self, frame: pd.DataFrame, rows: range | None) -> None:
        """A chunk of a JSONL file may bring a key the rows before it lacked."""
        given = {column for column in _OPTIONAL if column in frame.columns}
        if self.optional is None:
            self.optional = given
        for column in sorted(given - self.optional):
            bad = _first_bad(frame[column].notna().to_numpy())
            raise DataError(
                f"{where(self.source, _row(bad, rows), column)}: the column first appears in this "
                "row; earlier rows lack it (give every row the same columns)"
            )

    def _datasets_from_tasks(self, comparisons: pd.DataFrame, rows: range | None) -> pd.DataFrame:
        """Fill `dataset_a`/`dataset_b` from the tasks table, checking any given."""
        source, lookup = self.source, self.lookup
        for side in ("a", "b"):
            ids = comparisons[f"task_{side}"]
            unknown = ~ids.isin(lookup.keys()).to_numpy()
            if unknown.any():
                bad = _first_bad(unknown)
                raise DataError(
                    f"{where(source, _row(bad, rows), f'task_{side}')}: task '{ids.iloc[bad]}' "
                    f"is not in the tasks table '{self.tasks_source}' ({int(unknown.sum())} such "
                    f"rows{_among(rows)})"
                )
            given = f"dataset_{side}"
            mapped = ids.map(lookup)
            if given in comparisons.columns:
                stated = text_column(comparisons, given, source, allow_empty=True, rows=rows)
                clash = ((stated != "") & (stated != mapped)).to_numpy()
                if clash.any():
                    bad = _first_bad(clash)
                    raise DataError(
                        f"{where(source, _row(bad, rows), given)}: dataset '{stated.iloc[bad]}' "
                        f"disagrees with the tasks table, which puts task '{ids.iloc[bad]}' in "
                        f"'{mapped.iloc[bad]}'"
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
            comparisons[column] = text_column(comparisons, column, source, rows=rows)
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
            bad = long.iloc[_first_bad(clash)]
            raise DataError(
                f"{where(source, _row(int(bad['row']), rows), bad['column'])}: task "
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
) -> pd.DataFrame:
    """Check a comparisons table against the contract and return it with datasets and condition.

    Choices are matched after stripping spaces and lower-casing ("  A " reads as "a").
    """
    return ComparisonsValidator(source, tasks, tasks_source)(frame)


def _tasks_frame(tasks: str | Path | pd.DataFrame | None) -> tuple[pd.DataFrame | None, str]:
    if tasks is None:
        return None, "<tasks>"
    if isinstance(tasks, pd.DataFrame):
        return validate_tasks(tasks), "<tasks>"
    return read_tasks(tasks), str(tasks)


def _validated_chunks(
    comparisons: str | Path | pd.DataFrame, tasks: pd.DataFrame | None, tasks_source: str
) -> tuple[Iterator[pd.DataFrame], str]:
    """Validated comparisons, a chunk at a time for a file, and the source they name."""
    if isinstance(comparisons, pd.DataFrame):
        source = "<comparisons>"
        return iter([ComparisonsValidator(source, tasks, tasks_source)(comparisons)]), source
    source = str(comparisons)
    validate = ComparisonsValidator(source, tasks, tasks_source)
    return (validate(chunk, rows) for chunk, rows in iter_table(comparisons)), source


def read_comparisons(
    comparisons: str | Path | pd.DataFrame, tasks: str | Path | pd.DataFrame | None = None
) -> pd.DataFrame:
    """Read (or take) and validate comparisons, joining datasets from an optional tasks table."""
    chunks = list(_validated_chunks(comparisons, *_tasks_frame(tasks))[0])
    return chunks[0] if len(chunks) == 1 else pd.concat(chunks, ignore_index=True)


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
    edges = cells.loc[cells["n"] > 0, ["a_idx", "b_idx"]]
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
    comparisons: str | Path | pd.DataFrame, tasks: str | Path | pd.DataFrame | None = None
) -> ChoiceData:
    """Read (or take), validate and prepare comparisons for fitting, a chunk at a time."""
    tasks_frame, tasks_source = _tasks_frame(tasks)
    chunks, source = _validated_chunks(comparisons, tasks_frame, tasks_source)
    return _prepare_chunks(chunks, tasks_frame, source)


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
