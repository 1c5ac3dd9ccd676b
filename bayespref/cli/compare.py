"""`bayespref compare`: PSIS-LOO comparison of fits of the same data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bayespref.cli.console import console
from bayespref.io.tables import write_table
from bayespref.posterior.fit import ensure_not_fit_file


def compare(
    fit_dirs: Annotated[list[Path], typer.Argument(help="Two or more fit folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the table.")] = Path(
        "compare.csv"
    ),
) -> None:
    """Rank fits of the same data by PSIS-LOO expected log predictive density."""
    from bayespref.checks.loo import compare as run_compare

    ensure_not_fit_file(out)
    comparison = run_compare(fit_dirs)
    table = Table(title=f"PSIS-LOO comparison (one unit = {comparison.loo_unit})")
    for column in comparison.table.columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for row in comparison.table.itertuples(index=False):
        table.add_row(
            *(f"{value:.2f}" if isinstance(value, float) else escape(str(value)) for value in row)
        )
    console.print(table)
    for row in comparison.worst.itertuples():
        console.print(
            f"[bold yellow]warning:[/] {escape(row.model)}: Pareto k {row.pareto_k:.2f} at cell "
            f"{row.cell} ({escape(row.task_a)} shown before {escape(row.task_b)}); LOO is "
            "unreliable there",
            highlight=False,
        )
    write_table(comparison.table, out)
    console.print(f"wrote {out}")
