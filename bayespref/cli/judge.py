"""`bayespref judge`: rater models judge completions (pairs of transcripts, or one at a time)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayespref.cli.console import console, errors, fail
from bayespref.collect.engines import ENGINES, EngineOptions
from bayespref.collect.engines.openai import HttpSettings


def _completions_path(path: Path) -> Path:
    return path / "completions.parquet" if path.is_dir() else path


# Long: one typer option per setting of the run and of each engine.
def judge_command(
    completions: Annotated[
        Path, typer.Argument(help="A completions table, or a `bayespref complete` folder.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (created or resumed).")],
    engine: Annotated[str, typer.Option(help=f"One of {', '.join(ENGINES)}.")],
    rater: Annotated[
        list[str] | None, typer.Option(help="A judging model; repeat for a raters x authors grid.")
    ] = None,
    truth: Annotated[
        Path | None, typer.Option(help="Simulated engine: a `bayespref simulate` folder.")
    ] = None,
    protocol: Annotated[
        str,
        typer.Option(
            help="A template that shows completions: post-task-transcripts-revealed, "
            "-stated, -reasoning, completion-rating-1-5, completion-rating-1-10, refusal-judge."
        ),
    ] = "post-task-transcripts-revealed",
    degree: Annotated[
        int | None, typer.Option(help="Partners per completion (choice); default all pairs.")
    ] = None,
    samples: Annotated[int, typer.Option(help="Repeats of each ordered pair or rating.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the design and of every trial.")] = 0,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    max_tokens: Annotated[
        int | None, typer.Option(help="Tokens per answer; default: the template's.")
    ] = None,
    keep_condition: Annotated[
        bool, typer.Option(help="Show the judge the completion-time system prompt.")
    ] = False,
    allow_unbalanced: Annotated[
        bool, typer.Option(help="Judge authors with different task sets (warns; confounded).")
    ] = False,
    base_url: Annotated[
        str, typer.Option(help="OpenAI engine: the server's base URL.")
    ] = HttpSettings.base_url,
    api_key_env: Annotated[
        str, typer.Option(help="OpenAI engine: environment variable holding the API key.")
    ] = HttpSettings.api_key_env,
    tensor_parallel_size: Annotated[int, typer.Option(help="vLLM engine: GPUs per model.")] = 1,
    device: Annotated[str | None, typer.Option(help="Transformers engine: torch device.")] = None,
    latency: Annotated[float, typer.Option(help="Simulated engine: seconds per batch.")] = 0.0,
    batch_size: Annotated[int, typer.Option(help="Trials per engine call and shard.")] = 256,
) -> None:
    """Judge completions by one or more raters (resumable); writes comparisons.parquet or
    ratings.parquet with rater_model and the authors. Exits 1 if some judgments still fail."""
    from bayespref.collect.judge import JudgeConfig, judge
    from bayespref.io.tables import read_table

    try:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
        extra = {}
        raters = list(rater or [])
        if engine == "simulated":
            from bayespref.collect.engines.simulated_authors import truth_digest

            if truth is None:
                raise ValueError("the simulated engine needs --truth SIMDIR")
            extra["truth"] = truth_digest(truth)
            raters = raters or [f"simulator:{extra['truth']}"]
        elif not raters:
            raise ValueError(f"the {engine} engine needs --rater")
        source = _completions_path(completions)
        config = JudgeConfig(
            engine=engine,
            raters=tuple(raters),
            protocol=protocol,
            degree=degree,
            samples=samples,
            seed=seed,
            temperature=temperature,
            max_tokens=max_tokens,
            keep_condition=keep_condition,
            extra=extra,
        )
        options = EngineOptions(
            http=HttpSettings(base_url=base_url, api_key_env=api_key_env),
            tensor_parallel_size=tensor_parallel_size,
            device=device,
            latency=latency,
            truth=str(truth) if truth else None,
        )
        table = read_table(source)
        result = judge(config, table, out, options, batch_size, str(source), allow_unbalanced)
    except (ValueError, RuntimeError, OSError) as error:
        fail(error)
    console.print(
        f"{result.completed} of {result.planned} judgments made; wrote {result.table or out}",
        highlight=False,
    )
    if not result.complete:
        errors.print(
            f"[yellow]warning:[/] {result.errors} judgments failed (e.g. {result.error_example}); "
            "run the same command again to retry them",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)
