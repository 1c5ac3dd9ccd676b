"""Where in a table something is: the file, the 1-based row (and CSV line) and the column.

Error messages everywhere name their place this way.
"""

from __future__ import annotations

import numpy as np


def where(source: str, row: int | None = None, column: str | None = None) -> str:
    """Human-readable location: "file 'x.csv', row 3 (line 4), column 'choice'"."""
    parts = [f"file '{source}'"]
    if row is not None:
        line = f" (line {row + 1})" if source.endswith(".csv") else ""
        parts.append(f"row {row}{line}")
    if column is not None:
        parts.append(f"column '{column}'")
    return ", ".join(parts)


def first_bad(mask: np.ndarray) -> int:
    """Position of the first True."""
    return int(np.flatnonzero(mask)[0])


def table_row(position: int, rows: range | None) -> int:
    """1-based table row of a position in a chunk whose 0-based table rows are `rows` (None: the
    chunk is the whole table)."""
    return (rows.start if rows else 0) + position + 1


def in_rows(rows: range | None) -> str:
    """Where a count of bad rows was made: in one chunk of a table read in chunks."""
    return "" if rows is None else f" in rows {rows.start + 1}-{rows.stop}"


def listing(names: list[str], shown: int = 5) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
