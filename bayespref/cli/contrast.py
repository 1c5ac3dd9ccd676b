"""`bayespref contrast`: two fits of the same tasks side by side (protocols, models, conditions)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayespref.cli.console import console
from bayespref.cli.options import Seed


def contrast_command(
    first: Annotated[Path, typer.Argument(help="A fit folder (e.g. pre-task choices).")],
    second: Annotated[
        Path, typer.Argument(help="A fit folder of the same tasks (e.g. post-task).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    condition_first: Annotated[
        str | None, typer.Option(help="The first fit's condition (default: its reference).")
    ] = None,
    condition_second: Annotated[
        str | None, typer.Option(help="The second fit's condition (default: its reference).")
    ] = None,
    draws: Annotated[
        int, typer.Option(min=100, help="Draws for the correlation's interval.")
    ] = 2000,
    seed: Seed = 0,
) -> None:
    """Correlate two fits' utilities over their shared tasks (94% interval over task resampling and
    posterior uncertainty), set their dataset means and position terms side by side, contrast
    their position bias (observed first-shown win rates; the difference of the global terms with
    its interval), and write contrast.json, dataset_means.csv and position.csv."""
    from bayespref.analysis.contrasts import position_contrast, position_terms, utility_contrast
    from bayespref.io.atomic import make_folder, write_json
    from bayespref.io.tables import write_table
    from bayespref.posterior.fit import load_fit

    fits = [load_fit(first), load_fit(second)]
    summary, means = utility_contrast(
        fits[0].utilities, fits[1].utilities, condition_first, condition_second, draws, seed
    )
    summary |= position_contrast(fits[0], fits[1], seed)
    positions = position_terms([("first", fits[0].params), ("second", fits[1].params)])
    make_folder(out)
    write_json({"first": str(first), "second": str(second), **summary}, out / "contrast.json")
    write_table(means, out / "dataset_means.csv")
    write_table(positions, out / "position.csv")
    console.print(
        f"{summary['n_tasks']} shared tasks: Pearson r {summary['pearson']:.3f} "
        f"(94% {summary['pearson_low']:.3f} to {summary['pearson_high']:.3f}), "
        f"Spearman {summary['spearman']:.3f}",
        highlight=False,
    )
    console.print(
        f"first-shown task won {summary['first_shown_win_rate_first']:.1%} of the first fit's "
        f"choices and {summary['first_shown_win_rate_second']:.1%} of the second's",
        highlight=False,
    )
    if "position_difference" in summary:
        console.print(
            f"position bias, second minus first: {summary['position_difference']:.3f} noise units "
            f"(94% {summary['position_difference_low']:.3f} to "
            f"{summary['position_difference_high']:.3f})",
            highlight=False,
        )
    console.print(positions.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    console.print(f"wrote {out}", highlight=False)
