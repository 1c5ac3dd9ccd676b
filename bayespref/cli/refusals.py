"""`bayespref refusals`: which completions refuse, and per-task refusal rates."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayespref.cli.console import console


def refusals_command(
    completions: Annotated[
        Path, typer.Argument(help="A completions table, or a `bayespref complete` folder.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    judged: Annotated[
        Path | None,
        typer.Option(help="Ratings from `bayespref judge --protocol refusal-judge` (optional)."),
    ] = None,
    by: Annotated[
        list[str] | None,
        typer.Option(help="Group rates by these columns (default task_id, dataset); repeat."),
    ] = None,
) -> None:
    """Classify every completion (rule-based, and by an LLM judge when --judged is given) and
    write refusals.csv and refusal_rates.csv (per task, with 94% intervals)."""
    import pandas as pd

    from bayespref.analysis.refusal_rates import classify_refusals, refusal_rates
    from bayespref.io.tables import read_table, write_table

    source = completions / "completions.parquet" if completions.is_dir() else completions
    judged_table = read_table(judged) if judged is not None else None
    classified = classify_refusals(read_table(source), judged_table, str(source), str(judged))
    groups = tuple(by or ("task_id", "dataset"))
    methods = ("rule", "judge") if judged is not None else ("rule",)
    rates = pd.concat([refusal_rates(classified, method, groups) for method in methods])
    write_table(classified, out / "refusals.csv")
    write_table(rates, out / "refusal_rates.csv")
    for method in methods:
        share = classified[f"refusal_{method}"].astype(float).mean()
        console.print(f"{method}: {share:.1%} of completions refuse", highlight=False)
    console.print(f"wrote {out / 'refusal_rates.csv'}", highlight=False)
