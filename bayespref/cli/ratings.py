"""`bayespref ratings analyze`: reliability and discrimination of stated ratings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated

import typer

from bayespref.cli.console import console
from bayespref.io.atomic import make_folder
from bayespref.io.tables import write_table

SCALE_COLUMNS = ["template", "scale"]
ratings_app = typer.Typer(help="Stated ratings: reliability and discrimination.")


@ratings_app.command("analyze")
def analyze_command(
    ratings: Annotated[Path, typer.Argument(help="A ratings table (CSV, Parquet or JSONL).")],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Output folder (default: <ratings>_analysis beside it)."),
    ] = None,
    ordinal: Annotated[
        bool, typer.Option(help="Also fit the ordinal model of each model's ratings (slower).")
    ] = False,
    utilities: Annotated[
        Path | None,
        typer.Option(help="A fit's utilities.csv to correlate the ordinal latent values with."),
    ] = None,
    draws: Annotated[int, typer.Option(help="Draws per chain of the ordinal model.")] = 500,
    seed: Annotated[int, typer.Option(help="Random seed of the ordinal model.")] = 0,
) -> None:
    """Distribution, modal share, KL from uniform and ICC(1) per model and template; a
    discrimination plot; mean ratings by condition, by dataset and by rater x author; optionally
    an ordinal model correlated with pairwise utilities."""
    from bayespref.analysis import ratings as rt
    from bayespref.report import figures
    from bayespref.report.html import save_figure

    out = out or ratings.with_name(f"{ratings.stem}_analysis")
    table = rt.read_ratings(ratings)
    fitted = None if utilities is None else rt.read_utilities(utilities)  # before any sampling
    summary = rt.summarize(table)
    created = not out.exists()
    make_folder(out)
    try:
        write_table(summary, out / "summary.csv")
        write_table(rt.distribution(table), out / "distribution.csv")
        save_figure(figures.discrimination_plot(summary), out / "discrimination.png")
        _breakdowns(table, out)
        if ordinal or utilities is not None:
            _ordinal(table, out, fitted, draws, seed)
    except Exception:
        if created:  # no half-written folder of ours is left behind
            shutil.rmtree(out, ignore_errors=True)
        raise
    console.print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    console.print(f"wrote {out}", highlight=False)


def _ordinal(table, out: Path, utilities, draws: int, seed: int) -> None:
    from bayespref.analysis import ratings as rt
    from bayespref.io.atomic import write_atomically

    correlations = {}
    for model, group in table.groupby("model"):
        latent = rt.fit_ordinal(group, draws=draws, tune=draws, seed=seed)
        write_table(latent, out / f"latent_{model}.csv".replace("/", "_"))
        if utilities is not None:
            correlations[model] = rt.correlate_with_utilities(latent, utilities)
    if correlations:
        text = json.dumps(correlations, indent=2) + "\n"
        write_atomically(out / "latent_vs_utility.json", text)
        console.print(f"latent values against utilities: {correlations}", highlight=False)


def _breakdowns(table, out: Path) -> None:
    from bayespref.analysis.rating_breakdowns import breakdown, rater_author_table

    tables = {
        "by_condition.csv": breakdown(table, "condition"),
        "by_dataset.csv": breakdown(table, "dataset"),
        "rater_author.csv": rater_author_table(table),
    }
    for name, frame in tables.items():
        if frame is not None:
            write_table(frame, out / name)
    grid = tables["rater_author.csv"]
    if grid is not None:
        console.print("mean rating by rater (rows) and author:", highlight=False)
        for _, cell in grid.groupby(SCALE_COLUMNS):
            shown = cell.pivot(index="rater_model", columns="author_model", values="mean")
            console.print(shown.to_string(float_format=lambda v: f"{v:.2f}"), highlight=False)
