"""`bayespref fit`: fit a model to comparisons, write the fit folder and print its summary."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from bayespref.cli.console import console
from bayespref.cli.options import OutDir, Seed
from bayespref.model.spec import DEFAULT_MODEL


# Long: one typer option per setting of the model and the sampler.
def fit(
    comparisons: Annotated[Path, typer.Argument(help="Comparisons file (CSV, Parquet, JSONL).")],
    out: OutDir,
    tasks: Annotated[
        Path | None, typer.Option(help="Tasks table with each task's dataset.")
    ] = None,
    model: Annotated[str, typer.Option(help="Name in models/ or a TOML file.")] = DEFAULT_MODEL,
    chains: Annotated[int, typer.Option(help="Number of chains.")] = 4,
    draws: Annotated[
        int | None,
        typer.Option(
            help="Draws per chain after tuning (default 1000); with --until-trusted, the size of "
            "each block (default 100)."
        ),
    ] = None,
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
    pool: Annotated[
        bool,
        typer.Option(
            help="Pool several protocols, templates or models within a condition (an error "
            "otherwise; or tell them apart in the condition column)."
        ),
    ] = False,
    init: Annotated[
        str,
        typer.Option(
            help="Where chains start: jitter (PyMC's jittered initial point) or laplace (draws "
            "from the Laplace approximation, which also seeds the mass matrix)."
        ),
    ] = "jitter",
    until_trusted: Annotated[
        bool,
        typer.Option(
            help="Draw blocks of --draws (default 100) per chain until every reported quantity "
            "has r_hat <= 1.01 and ess_bulk >= 400, at most --max-draws per chain."
        ),
    ] = False,
    max_draws: Annotated[
        int, typer.Option(help="Cap on draws per chain (--until-trusted).")
    ] = 5000,
    refusal_rates: Annotated[
        Path | None,
        typer.Option(
            help="Per-task refusal counts of completions (`bayespref refusals`'s "
            "refusal_rates.csv): observed through the same per-task propensity as refusals in "
            "choices, with their own intercept and a positive slope. Needs a model with "
            'refusal = "modelled" (--model refusal).'
        ),
    ] = None,
) -> None:
    """Fit a Thurstonian model to comparisons and write the fit folder."""
    from bayespref.inference.settings import SamplerSettings
    from bayespref.workflows.fitting import fit as run_fit

    settings = SamplerSettings(
        chains=chains,
        draws=draws,
        tune=tune,
        target_accept=target_accept,
        seed=seed,
        precision=precision,
        init=init,
        until_trusted=until_trusted,
        max_draws=max_draws,
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
        pool=pool,
        refusal_rates=refusal_rates,
    )
    _print_summary(result, out)
    if strict and not result.diagnostics.passed:
        raise typer.Exit(code=1)


def _print_summary(result, out: Path | None) -> None:
    utilities = result.utilities.sort_values("mu_mean", ascending=False)
    label = " APPROXIMATE" if result.diagnostics.approximate else ""
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
    data = diagnostics.data
    console.print(
        f"{data.n_trials} trials ({data.outcomes}) in {data.n_cells} cells, "
        f"{data.n_tasks} tasks, {len(data.datasets)} datasets; sampling took "
        f"{diagnostics.sampler['wall_seconds']:.0f} s on {diagnostics.sampler['device']}"
    )
    if result.spec.refusal == "modelled":
        console.print(f"refusals: {data.refusals}", highlight=False)
    for note in data.notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False)
    if diagnostics.approximate:
        console.print(
            "[bold yellow]APPROXIMATE posterior[/] (Laplace approximation, --method approx): "
            f"optimizer {'converged' if diagnostics.passed else 'did not converge'} in "
            f"{diagnostics.measures['optimizer_iterations']} iterations; intervals ignore the "
            "utility spread's uncertainty and non-Gaussian tails",
            highlight=False,
        )
    elif diagnostics.passed:
        console.print(
            f"[green]diagnostics passed[/]: max r_hat {diagnostics.measures['max_r_hat']:.3f}, "
            f"min ess_bulk {diagnostics.measures['min_ess_bulk']:.0f}, 0 divergences"
        )
    for reason in diagnostics.reasons:
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
