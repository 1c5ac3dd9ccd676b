"""Reading CSV, Parquet and JSONL tables (a chunk of rows at a time) and writing them atomically.

Every error names the file, the row (1-based data row; for CSV also the file line) and the column.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from bayespref.errors import DataError
from bayespref.io.atomic import atomic_path
from bayespref.io.locations import first_bad, in_rows, table_row, where

READABLE_SUFFIXES = (".csv", ".parquet", ".jsonl", ".json", ".yaml", ".yml")
# The reference research pipeline's measurement files name a task's dataset its origin.
_YAML_RENAMES = {"origin_a": "dataset_a", "origin_b": "dataset_b"}
CHUNK_ROWS = 200_000
_BLOCK_BYTES = 1 << 20
# Control characters (C0, DEL, C1): never part of an id, and NUL cannot even be saved in a fit.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


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


def _check_csv_header(path: Path, source: str) -> None:
    """Refuse a header that names a column twice, and a first row with more fields than the
    header (pandas would silently read its first field as an index and shift the rest)."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        try:
            header = [name.strip() for name in next(reader, [])]
            first = next(reader, None)
        except csv.Error:  # e.g. a field over csv's size limit: pandas reads it and judges
            return
    seen: dict[str, int] = {}
    for number, name in enumerate(header, start=1):
        if name in seen and name:  # empty names (trailing commas) become "Unnamed: N"
            raise DataError(
                f"{where(source, column=name)}: the header names this column twice (columns "
                f"{seen[name]} and {number})"
            )
        seen[name] = number
    if first is not None and len(first) > len(header):
        raise DataError(
            f"{where(source, 1)}: {len(first)} fields, but the header names {len(header)}"
        )


def _bad_json_line(path: Path, source: str) -> DataError | None:
    """The error naming the row (and line) of the first line that is not a JSON object."""
    row = 0
    with path.open(encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            row += 1
            try:
                value = json.loads(line)
            except ValueError as error:
                reason = getattr(error, "msg", error)  # JSONDecodeError's, without its position
                return DataError(
                    f"{where(source, row)}: line {line_number} is not valid JSON ({reason})"
                )
            if not isinstance(value, dict):
                return DataError(f"{where(source, row)}: line {line_number} is not a JSON object")
    return None


def _parse_error(path: Path, source: str, suffix: str, error: Exception) -> DataError:
    if suffix == ".parquet":
        return DataError(f"{where(source)}: not a readable Parquet file ({error})")
    if suffix == ".csv" and (fields := _FIELDS.search(str(error))):
        expected, line, saw = fields.groups()
        return DataError(
            f"{where(source, int(line) - 1)}: {saw} fields, but the header names {expected}"
        )
    if suffix != ".csv" and (located := _bad_json_line(path, source)):
        return located
    return DataError(f"{where(source)}: cannot be parsed as {suffix[1:]} ({error})")


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
    if path.is_dir():
        raise DataError(f"{where(source)}: is a folder, not a table file")
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
        if suffix == ".csv":
            _check_csv_header(path, source)
        with _chunk_reader(path, suffix, chunk_rows) as (chunks, total):
            for chunk in chunks:
                chunk.columns = [str(column).strip() for column in chunk.columns]
                if first == 0 and chunk.columns.duplicated().any():
                    twice = chunk.columns[chunk.columns.duplicated()][0]
                    raise DataError(f"{where(source, column=twice)}: the column appears twice")
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
        raise _parse_error(path, source, suffix, error) from error
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


def text_column(
    frame: pd.DataFrame,
    column: str,
    source: str,
    allow_empty: bool = False,
    rows: range | None = None,
    identifier: bool = False,
) -> pd.Series:
    """The column as stripped strings; an empty cell is an error naming its row, and so is a
    control character (NUL, tab, newline, ...) in an `identifier` column."""
    values = frame[column]
    missing = values.isna()
    values = values.where(~missing, "").astype(str).str.strip()
    if identifier:
        control = values.str.contains(_CONTROL).to_numpy(dtype=bool)
        if control.any():
            bad = first_bad(control)
            character = _CONTROL.search(values.iloc[bad])[0]
            raise DataError(
                f"{where(source, table_row(bad, rows), column)}: the id {values.iloc[bad]!r} "
                f"holds the control character U+{ord(character):04X}; ids must be plain text"
            )
    empty = values == ""
    if empty.any() and not allow_empty:
        count = f"{int(empty.sum())} empty {in_rows(rows)[1:] or 'in all'}"
        raise DataError(
            f"{where(source, table_row(first_bad(empty.to_numpy()), rows), column)}: empty value "
            f"({count})"
        )
    return values


def write_table(frame: pd.DataFrame, path: str | Path) -> None:
    """Write CSV or Parquet atomically (temporary file in the same folder, then rename)."""
    with atomic_path(path) as temporary:
        if Path(path).suffix.lower() == ".parquet":
            frame.to_parquet(temporary, index=False)
        else:
            frame.to_csv(temporary, index=False)
