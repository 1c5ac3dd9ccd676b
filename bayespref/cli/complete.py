"""`bayespref complete`: completions of tasks by author models, per condition and sample."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import pandas as pd
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
from bayespref.data.comparisons import DEFAULT_CONDITION
from bayespref.errors import CollectError


def parse_conditions(values: list[str]) -> tuple[tuple[str, str], ...]:
    """`NAME=SYSTEM PROMPT` options as (name, prompt) pairs, after 'default' (no system prompt)
    unless 'default' is given."""
    pairs = []
    for value in values:
        name, sep, prompt = value.partition("=")
        if not sep or not name.strip():
            raise CollectError(f"--condition '{value}': expected NAME=SYSTEM PROMPT")
        pairs.append((name.strip(), prompt))
    if DEFAULT_CONDITION not in {name for name, _ in pairs}:
        pairs.insert(0, (DEFAULT_CONDITION, ""))
    return tuple(pairs)


def engine_inputs(
    engine: str, tasks: str | None, models: list[str], truth: Path | None
) -> tuple[pd.DataFrame, list[str], dict]:
    """(tasks, models, manifest extras) for an engine; the simulated engine reads its truth."""
    from bayespref.data.tasks import load_tasks

    check_engine(engine)
    if engine == "simulated":
        from bayespref.collect.engines.simulated import read_truth
        from bayespref.collect.engines.simulated_authors import truth_digest

        if truth is None or tasks is not None:
            raise CollectError("the simulated engine takes --truth SIMDIR instead of --tasks")
        digest = truth_digest(truth)
        return read_truth(truth)[0], models or [f"simulator:{digest}"], {"truth": digest}
    if tasks is None or not models:
        raise CollectError(f"the {engine} engine needs --tasks and --model")
    return load_tasks(tasks), models, {}


# Long: one typer option per setting of the run and of each engine.
def complete_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (created or resumed).")],
    engine: EngineName,
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
    samples: Annotated[
        int, typer.Option(min=1, help="Completions per task, author and condition.")
    ] = 1,
    seed: Annotated[int, typer.Option(help="Seed of every completion.")] = 0,
    n_tasks: Annotated[
        int | None, typer.Option(help="Use this many tasks, sampled evenly across datasets.")
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    max_tokens: Annotated[
        int | None, typer.Option(help="Tokens per completion; default: the template's.")
    ] = None,
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
    batch_size: Annotated[
        int, typer.Option(min=1, help="Completions per engine call and shard.")
    ] = 64,
) -> None:
    """Complete every task with each author model (resumable) and write completions.parquet.

    Rerunning the same command completes an interrupted run; exits 1 if some still fail."""
    from bayespref.collect.complete import CompleteConfig, complete
    from bayespref.data.tasks import stratified_sample

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
    options = options_from(locals())
    result = complete(config, task_table, out, options, batch_size)
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
