"""`bayespref simulate`: a ground truth and comparisons drawn from it."""

from __future__ import annotations

from typing import Annotated

import typer

from bayespref.cli.console import console
from bayespref.cli.options import OutDir, Seed
from bayespref.errors import DataError


def simulate(
    out: OutDir,
    tasks: Annotated[int, typer.Option("--tasks", help="Number of tasks.")] = 200,
    datasets: Annotated[int, typer.Option("--datasets", help="Number of datasets.")] = 5,
    comparisons: Annotated[int, typer.Option("--comparisons", help="Number of trials.")] = 6000,
    position_bias: Annotated[
        float, typer.Option(help="Bias toward the first-shown task (negative: second).")
    ] = 0.3,
    seed: Seed = 0,
    repeats: Annotated[int, typer.Option(help="Trials per pair, each in a random order.")] = 1,
    task_sd: Annotated[float, typer.Option(help="Spread of utilities within a dataset.")] = 1.0,
    task_sigma_sd: Annotated[float, typer.Option(help="Spread of log noise between tasks.")] = 0.2,
    refusal_rate: Annotated[float, typer.Option(help="Typical share of refused trials.")] = 0.0,
    unparsed_rate: Annotated[float, typer.Option(help="Share of unparsed answers.")] = 0.0,
    preset: Annotated[
        str | None,
        typer.Option(
            help="'realistic': sparse, nearly deterministic data like real runs; only --tasks, "
            "--datasets and --seed then apply."
        ),
    ] = None,
) -> None:
    """Write a ground truth and comparisons drawn from it (tasks, comparisons, truth)."""
    from bayespref.data.simulation import SimulationConfig, simulate, write_simulation

    if preset not in (None, "realistic"):
        raise DataError(f"unknown preset '{preset}'; the one preset is 'realistic'")
    try:
        if preset == "realistic":
            config = SimulationConfig.realistic(n_tasks=tasks, n_datasets=datasets, seed=seed)
        else:
            config = SimulationConfig(
                n_tasks=tasks,
                n_datasets=datasets,
                n_comparisons=comparisons,
                position_bias=position_bias,
                seed=seed,
                repeats=repeats,
                task_sd=task_sd,
                task_sigma_sd=task_sigma_sd,
                refusal_rate=refusal_rate,
                unparsed_rate=unparsed_rate,
            )
    except ValueError as error:  # the configuration's own checks
        raise DataError(str(error)) from error
    simulation = simulate(config)
    write_simulation(simulation, out)
    counts = simulation.comparisons["choice"].value_counts().to_dict()
    console.print(f"wrote {out}/: {config.n_tasks} tasks, {config.n_comparisons} trials {counts}")
