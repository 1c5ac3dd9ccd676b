"""`bayespref select`: the next most informative pairs, from a fit's posterior."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayespref.analysis.selection import CANDIDATES, STRATEGIES, select
from bayespref.cli.console import console, errors
from bayespref.io.tables import read_table, require_columns, write_table
from bayespref.posterior.fit import ensure_not_fit_file


def select_command(
    fit_dir: Annotated[Path, typer.Argument(help="A fit folder written by `bayespref fit`.")],
    budget: Annotated[int, typer.Option(help="Number of new pairs (each in both orders).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (CSV or Parquet).")],
    strategy: Annotated[
        str,
        typer.Option(
            help=f"{', '.join(STRATEGIES)}: information from the posterior draws, uniform pairs, "
            "or the reference heuristic (close and rarely compared)."
        ),
    ] = "posterior",
    max_per_task: Annotated[
        int | None,
        typer.Option(help="Most chosen pairs per task; default max(2, ceil(4 budget / tasks))."),
    ] = None,
    exclude: Annotated[
        Path | None,
        typer.Option(help="A table of pairs (task_a, task_b) already measured outside the fit."),
    ] = None,
    candidates: Annotated[
        int, typer.Option(help="Score all pairs up to this many; sample candidates beyond.")
    ] = CANDIDATES,
    seed: Annotated[int, typer.Option(help="Seed of candidate draws and of tie-breaking.")] = 0,
) -> None:
    """Choose the next most informative pairs to compare, from a fit's posterior."""
    ensure_not_fit_file(out)
    excluded = None
    if exclude is not None:
        excluded = read_table(exclude)
        require_columns(excluded, ("task_a", "task_b"), str(exclude))
    pairs = select(fit_dir, budget, strategy, seed, max_per_task, excluded, candidates)
    write_table(pairs, out)
    chosen = len(pairs) // 2
    console.print(
        f"wrote {out}: {chosen} pairs in both orders ({len(pairs)} rows, strategy {strategy})",
        highlight=False,
        soft_wrap=True,
    )
    if chosen < budget:
        errors.print(
            f"[yellow]warning:[/] only {chosen} of {budget} pairs could be chosen: too few new "
            f"pairs are left under the per-task cap ({pairs.attrs['max_per_task']})",
            highlight=False,
            soft_wrap=True,
        )
