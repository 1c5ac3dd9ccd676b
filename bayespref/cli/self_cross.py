"""`bayespref self-cross`: the self term (rater == author) of judged completions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayespref.cli.console import console
from bayespref.cli.options import Seed


def self_cross_command(
    judged: Annotated[
        Path, typer.Argument(help="comparisons or ratings written by `bayespref judge`.")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output CSV (default: terms.csv beside).")
    ] = None,
    draws: Annotated[int, typer.Option(help="Draws (and tuning steps) per chain.")] = 500,
    chains: Annotated[int, typer.Option(help="Chains.")] = 2,
    seed: Seed = 0,
) -> None:
    """Fit task, author, rater and self terms to judged pairs (probit) or ratings (ordinal)
    and write each term's posterior mean, sd and 94% interval."""
    from bayespref.analysis.self_cross import fit_self_cross_pairwise, fit_self_cross_ratings
    from bayespref.io.tables import read_table, write_table

    table = read_table(judged)
    fit = fit_self_cross_pairwise if "choice" in table.columns else fit_self_cross_ratings
    terms = fit(table, str(judged), draws=draws, chains=chains, seed=seed)
    path = out or judged.with_name("terms.csv")
    write_table(terms, path)
    shown = terms[terms["term"] != "task"]
    console.print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    console.print(f"wrote {path}", highlight=False)
