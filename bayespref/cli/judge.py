"""`bayespref judge`: rater models judge completions (pairs of transcripts, or one at a time)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bayespref.cli.console import console, errors
from bayespref.cli.engine_options import (
    ApiKeyEnv,
    BaseUrl,
    ChatTemplate,
    Concurrency,
    Device,
    Dtype,
    EngineName,
    GpuMemory,
    Latency,
    MaxModelLen,
    MicroBatch,
    Quantization,
    Retries,
    TensorParallel,
    Timeout,
    TrustRemoteCode,
    check_engine,
    options_from,
)
from bayespref.collect.engines import HttpSettings, VllmSettings
from bayespref.errors import CollectError


def _completions_path(path: Path) -> Path:
    return path / "completions.parquet" if path.is_dir() else path


# Long: one typer option per setting of the run and of each engine.
def judge_command(
    completions: Annotated[
        Path, typer.Argument(help="A completions table, or a `bayespref complete` folder.")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (created or resumed).")],
    engine: EngineName,
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
    samples: Annotated[
        int, typer.Option(min=1, help="Repeats of each ordered pair or rating.")
    ] = 1,
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
    base_url: BaseUrl = HttpSettings.base_url,
    api_key_env: ApiKeyEnv = None,
    concurrency: Concurrency = HttpSettings.concurrency,
    timeout: Timeout = HttpSettings.timeout,
    retries: Retries = HttpSettings.retries,
    tensor_parallel_size: TensorParallel = 1,
    max_model_len: MaxModelLen = None,
    gpu_memory_utilization: GpuMemory = VllmSettings.gpu_memory_utilization,
    quantization: Quantization = None,
    trust_remote_code: TrustRemoteCode = False,
    chat_template: ChatTemplate = None,
    dtype: Dtype = None,
    device: Device = None,
    micro_batch: MicroBatch = 8,
    latency: Latency = 0.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Trials per engine call and shard.")] = 256,
) -> None:
    """Judge completions by one or more raters (resumable); writes comparisons.parquet or
    ratings.parquet with rater_model and the authors. Exits 1 if some judgments still fail."""
    from bayespref.collect.judge import JudgeConfig, judge
    from bayespref.io.tables import read_table

    check_engine(engine)
    extra = {}
    raters = list(rater or [])
    if engine == "simulated":
        from bayespref.collect.engines.simulated_authors import truth_digest

        if truth is None:
            raise CollectError("the simulated engine needs --truth SIMDIR")
        extra["truth"] = truth_digest(truth)
        raters = raters or [f"simulator:{extra['truth']}"]
    elif not raters:
        raise CollectError(f"the {engine} engine needs --rater")
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
    options = options_from(locals())
    table = read_table(source)
    result = judge(config, table, out, options, batch_size, str(source), allow_unbalanced)
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
