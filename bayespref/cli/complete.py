"""`bayespref complete`: completions of tasks by author models, per condition and sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

from bayespref.cli.console import console, errors, fail
from bayespref.collect.engines import ENGINES, EngineOptions
from bayespref.collect.engines.openai import HttpSettings
from bayespref.data.comparisons import DEFAULT_CONDITION


def parse_conditions(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`NAME=SYSTEM PROMPT` options as (name, prompt) pairs, after 'default' (no system prompt)
    unless 'default' is given."""
    pairs = []
    for value in values:
        name, sep, prompt = value.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"--condition '{value}': expected NAME=SYSTEM PROMPT")
        pairs.append((name.strip(), prompt))
    if DEFAULT_CONDITION not in {name for name, _ in pairs}:
        pairs.insert(0, (DEFAULT_CONDITION, ""))
    return tuple(pairs)


def engine_inputs(
    engine: str, tasks: str | None, models: list[str], truth: Path | None
) -> tuple[pd.DataFrame, list[str], dict]:
    """(tasks, models, manifest extras) for an engine; the simulated engine reads its truth."""
    from bayespref.data.tasks import load_tasks

    if engine not in ENGINES:
        raise ValueError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
    if engine == "simulated":
        from bayespref.collect.engines.simulated import read_truth
        from bayespref.collect.engines.simulated_authors import truth_digest

        if truth is None or tasks is not None:
            raise ValueError("the simulated engine takes --truth SIMDIR instead of --tasks")
        digest = truth_digest(truth)
        return read_truth(truth)[0], models or [f"simulator:{digest}"], {"truth": digest}
    if tasks is None or not models:
        raise ValueError(f"the {engine} engine needs --tasks and --model")
    return load_tasks(tasks), models, {}


# Long: one typer option per setting of the run and of each engine.
def complete_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (created or resumed).")],
    engine: Annotated[str, typer.Option(help=f"One of {', '.join(ENGINES)}.")],
    tasks: Annotated[
        str | None, typer.Option(help="Tasks file (task_id, dataset, prompt), or 'shipped'.")
    ] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="An author model; repeat for several.")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Simulated engine: a `bayespref simulate` folder.")
    ] = None,
    condition: Annotated[
        list[str] | None,
        typer.Option(help="NAME=SYSTEM PROMPT at completion time; repeat. 'default' has none."),
    ] = None,
    samples: Annotated[int, typer.Option(help="Completions per task, author and condition.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of every completion.")] = 0,
    n_tasks: Annotated[
        int | None, typer.Option(help="Use this many tasks, sampled evenly across datasets.")
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    max_tokens: Annotated[
        int | None, typer.Option(help="Tokens per completion; default: the template's.")
    ] = None,
    base_url: Annotated[
        str, typer.Option(help="OpenAI engine: the server's base URL.")
    ] = HttpSettings.base_url,
    api_key_env: Annotated[
        str, typer.Option(help="OpenAI engine: environment variable holding the API key.")
    ] = HttpSettings.api_key_env,
    tensor_parallel_size: Annotated[int, typer.Option(help="vLLM engine: GPUs per model.")] = 1,
    device: Annotated[str | None, typer.Option(help="Transformers engine: torch device.")] = None,
    latency: Annotated[float, typer.Option(help="Simulated engine: seconds per batch.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Completions per engine call and shard.")] = 64,
) -> None:
    """Complete every task with each author model (resumable) and write completions.parquet.

    Rerunning the same command completes an interrupted run; exits 1 if some still fail."""
    from bayespref.collect.complete import CompleteConfig, complete
    from bayespref.data.tasks import stratified_sample

    try:
        task_table, models, extra = engine_inputs(engine, tasks, list(model or []), truth)
        if n_tasks is not None:
            task_table = stratified_sample(task_table, n_tasks, seed)
        config = CompleteConfig(
            engine=engine,
            models=tuple(models),
            conditions=parse_conditions(list(condition or [])),
            samples=samples,
            seed=seed,
            temperature=temperature,
            max_tokens=max_tokens,
            extra=extra,
        )
        options = EngineOptions(
            http=HttpSettings(base_url=base_url, api_key_env=api_key_env),
            tensor_parallel_size=tensor_parallel_size,
            device=device,
            latency=latency,
            truth=str(truth) if truth else None,
        )
        result = complete(config, task_table, out, options, batch_size)
    except (ValueError, RuntimeError, OSError) as error:
        fail(error)
    console.print(
        f"{result.completed} of {result.planned} completions made; wrote {result.table or out}",
        highlight=False,
    )
    if not result.complete:
        errors.print(
            f"[yellow]warning:[/] {result.errors} completions failed (e.g. "
            f"{result.error_example}); run the same command again to retry them",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)
