"""`bayespref predict`: P(first shown is chosen) for new pairs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayespref.cli.console import console
from bayespref.io.tables import write_table
from bayespref.posterior.fit import ensure_not_fit_file


def predict(
    fit_dir: Annotated[Path, typer.Argument(help="A fit folder written by `bayespref fit`.")],
    pairs: Annotated[Path, typer.Argument(help="Rows with task_a (shown first) and task_b.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (CSV or Parquet).")],
) -> None:
    """P(first shown is chosen) with a 94% interval for each row, from the posterior draws."""
    from bayespref.analysis.prediction import predict as run_predict

    ensure_not_fit_file(out)
    predictions = run_predict(fit_dir, pairs)
    write_table(predictions, out)
    console.print(f"wrote {out}: {len(predictions)} rows")
