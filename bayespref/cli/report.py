"""`bayespref report`: one self-contained HTML report of a fit."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayespref.cli.console import console


def report_command(
    fit_dir: Annotated[Path, typer.Argument(help="A fit folder written by `bayespref fit`.")],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="The HTML file; figures go to <name>_files/.")
    ] = Path("report.html"),
    refusal_rates: Annotated[
        Path | None,
        typer.Option(
            help="Per-task refusal rates of completions (`bayespref refusals`'s "
            "refusal_rates.csv) to plot against utility instead of the trials' refusals."
        ),
    ] = None,
) -> None:
    """Write one self-contained HTML report of a fit, with its figures as PNG beside it."""
    from bayespref.analysis.refusal_rates import read_refusal_rates
    from bayespref.report.html import report

    rates = None if refusal_rates is None else read_refusal_rates(refusal_rates)
    files = report(fit_dir, out, rates)
    console.print(f"wrote {out} (figures and tables in {files})", highlight=False)
