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
) -> None:
    """Write one self-contained HTML report of a fit, with its figures as PNG beside it."""
    from bayespref.report.html import report

    files = report(fit_dir, out)
    console.print(f"wrote {out} (figures and tables in {files})", highlight=False)
