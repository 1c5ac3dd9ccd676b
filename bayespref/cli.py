"""The `bayespref` command line: a thin layer over the library."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bayespref.collect.command import collect_command
from bayespref.console import console, errors, fail
from bayespref.data import DataError, DataWarning, write_table
from bayespref.report_command import ratings_app, report_command
from bayespref.select_command import select_command
from bayespref.spec import SpecError

app = typer.Typer(
    help="Measure what an LLM prefers, with honest uncertainty.", no_args_is_help=True
)

OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed gives the same numbers.")]


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    label = "data" if issubclass(category, DataWarning) else category.__name__
    errors.print(f"[yellow]warning ({label}):[/] {message}", highlight=False, soft_wrap=True)


@app.callback()
def main() -> None:
    warnings.showwarning = _show_warning


app.command("collect")(collect_command)
app.command("report")(report_command)
app.command("select")(select_command)
app.add_typer(ratings_app, name="ratings")


@app.command()
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
    from bayespref.simulate import SimulationConfig, simulate, write_simulation

    if preset not in (None, "realistic"):
        fail(ValueError(f"unknown preset '{preset}'; the one preset is 'realistic'"))
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
    except ValueError as error:
        fail(error)
    simulation = simulate(config)
    write_simulation(simulation, out)
    counts = simulation.comparisons["choice"].value_counts().to_dict()
    console.print(f"wrote {out}/: {config.n_tasks} tasks, {config.n_comparisons} trials {counts}")


def _print_summary(result, out: Path | None) -> None:
    utilities = result.utilities.sort_values("mu_mean", ascending=False)
    label = " APPROXIMATE" if result.diagnostics.get("approximate") else ""
    table = Table(title=f"Top tasks by utility ({result.spec.name}{label}; 94% intervals)")
    for column in ("task_id", "dataset", "mu_mean", "mu_low", "mu_high", "sigma_mean", "n_trials"):
        table.add_column(column, justify="left" if column in ("task_id", "dataset") else "right")
    for row in utilities.head(10).itertuples():
        table.add_row(
            escape(row.task_id),
            escape(row.dataset),
            f"{row.mu_mean:.2f}",
            f"{row.mu_low:.2f}",
            f"{row.mu_high:.2f}",
            f"{row.sigma_mean:.2f}",
            str(row.n_trials),
        )
    console.print(table)
    params = Table(title="Global parameters")
    for column in ("name", "mean", "low", "high", "r_hat", "ess_bulk"):
        params.add_column(column, justify="left" if column == "name" else "right")
    for row in result.params.itertuples():
        params.add_row(
            escape(row.name),
            f"{row.mean:.3f}",
            f"{row.low:.3f}",
            f"{row.high:.3f}",
            f"{row.r_hat:.3f}",
            f"{row.ess_bulk:.0f}",
        )
    console.print(params)
    diagnostics = result.diagnostics
    data = diagnostics["data"]
    console.print(
        f"{data['n_trials']} trials ({data['outcomes']}) in {data['n_cells']} cells, "
        f"{data['n_tasks']} tasks, {len(data['datasets'])} datasets; sampling took "
        f"{diagnostics['sampler']['wall_seconds']:.0f} s on {diagnostics['sampler']['device']}"
    )
    for note in data["notes"]:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if diagnostics.get("approximate"):
        console.print(
            "[bold yellow]APPROXIMATE posterior[/] (Laplace approximation, --method approx): "
            f"optimizer {'converged' if diagnostics['passed'] else 'did not converge'} in "
            f"{diagnostics['optimizer_iterations']} iterations; intervals ignore the utility "
            "spread's uncertainty and non-Gaussian tails",
            highlight=False,
        )
    elif diagnostics["passed"]:
        console.print(
            f"[green]diagnostics passed[/]: max r_hat {diagnostics['max_r_hat']:.3f}, "
            f"min ess_bulk {diagnostics['min_ess_bulk']:.0f}, 0 divergences"
        )
    for reason in diagnostics["reasons"]:
        console.print(f"[bold yellow]warning:[/] {reason}", highlight=False)
    for row in result.ppc[result.ppc["outside"]].itertuples():
        console.print(
            f"[bold yellow]posterior predictive check:[/] {escape(row.statistic)} observed "
            f"{row.observed:.3f}, outside the replicated 94% interval "
            f"[{row.replicated_low:.3f}, {row.replicated_high:.3f}]",
            highlight=False,
        )
    if out is not None:
        console.print(f"wrote {out}/ ({', '.join(sorted(p.name for p in out.iterdir()))})")


@app.command()
def fit(
    comparisons: Annotated[Path, typer.Argument(help="Comparisons file (CSV, Parquet, JSONL).")],
    out: OutDir,
    tasks: Annotated[
        Path | None, typer.Option(help="Tasks table with each task's dataset.")
    ] = None,
    model: Annotated[str, typer.Option(help="Name in models/ or a TOML file.")] = "hierarchical",
    chains: Annotated[int, typer.Option(help="Number of chains.")] = 4,
    draws: Annotated[int, typer.Option(help="Draws per chain after tuning.")] = 1000,
    tune: Annotated[int, typer.Option(help="Tuning steps per chain.")] = 1000,
    target_accept: Annotated[float, typer.Option(help="NUTS target acceptance.")] = 0.9,
    seed: Seed = 0,
    force: Annotated[bool, typer.Option(help="Replace an existing output folder.")] = False,
    strict: Annotated[bool, typer.Option(help="Exit with code 1 when diagnostics fail.")] = False,
    progress: Annotated[bool, typer.Option(help="Show the sampler's progress bars.")] = True,
    log_likelihood: Annotated[
        bool, typer.Option(help="Store the pointwise log-likelihood (needed by compare).")
    ] = True,
    method: Annotated[
        str,
        typer.Option(
            help="nuts (full posterior) or approx (Laplace approximation for very large data; "
            "labelled approximate in every output)."
        ),
    ] = "nuts",
    precision: Annotated[
        str,
        typer.Option(
            help="Arithmetic: auto (float32 for NUTS, float64 for approx), float64 or float32."
        ),
    ] = "auto",
) -> None:
    """Fit a Thurstonian model to comparisons and write the fit folder."""
    from bayespref.fit import FitError, SamplerSettings
    from bayespref.fit import fit as run_fit

    try:
        settings = SamplerSettings(
            chains=chains,
            draws=draws,
            tune=tune,
            target_accept=target_accept,
            seed=seed,
            precision=precision,
        )
        result = run_fit(
            comparisons,
            tasks,
            model,
            settings,
            out=out,
            force=force,
            progressbar=progress,
            log_likelihood=log_likelihood,
            method=method,
        )
    except (DataError, SpecError, FitError) as error:
        fail(error)
    _print_summary(result, out)
    if strict and not result.diagnostics["passed"]:
        raise typer.Exit(code=1)


@app.command()
def predict(
    fit_dir: Annotated[Path, typer.Argument(help="A fit folder written by `bayespref fit`.")],
    pairs: Annotated[Path, typer.Argument(help="Rows with task_a (shown first) and task_b.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output file (CSV or Parquet).")],
) -> None:
    """P(first shown is chosen) with a 94% interval for each row, from the posterior draws."""
    from bayespref.fit import FitError
    from bayespref.predict import predict as run_predict

    try:
        predictions = run_predict(fit_dir, pairs)
    except (DataError, FitError) as error:
        fail(error)
    write_table(predictions, out)
    console.print(f"wrote {out}: {len(predictions)} rows")


@app.command()
def compare(
    fit_dirs: Annotated[list[Path], typer.Argument(help="Two or more fit folders.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to save the table.")] = Path(
        "compare.csv"
    ),
) -> None:
    """Rank fits of the same data by PSIS-LOO expected log predictive density."""
    from bayespref.compare import compare as run_compare
    from bayespref.fit import FitError

    try:
        comparison = run_compare(fit_dirs)
    except FitError as error:
        fail(error)
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
