"""`bayespref collect`: register with `app.command("collect")(collect_command)`."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

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
from bayespref.collect.engines import EngineOptions, HttpSettings, VllmSettings
from bayespref.collect.plan import CollectConfig
from bayespref.collect.runner import CollectResult, Preview, collect, preview
from bayespref.collect.templates import available_templates
from bayespref.data.comparisons import DEFAULT_CONDITION
from bayespref.errors import CollectError


def _simulated_inputs(truth: Path) -> tuple[pd.DataFrame, str]:
    """(tasks, model name) for the simulated engine; the name carries a hash of the truth."""
    from bayespref.collect.engines.simulated import TRUTH_FILES, read_truth

    tasks, _, _ = read_truth(truth)
    digest = hashlib.sha256(b"".join((truth / name).read_bytes() for name in TRUTH_FILES))
    return tasks, f"simulator:{digest.hexdigest()[:12]}"


# Long: one typer option per setting of the run and of each engine.
def collect_command(
    out: Annotated[Path, typer.Option("--out", "-o", help="Run folder (created or resumed).")],
    engine: EngineName,
    tasks: Annotated[
        str | None,
        typer.Option(
            help="Tasks file (task_id, dataset, prompt), or 'shipped' / 'shipped:chat,maths'."
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Model id, folder or .gguf file (as the engine reads it).")
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(
            help="Simulated engine: a `bayespref simulate` folder (replaces --tasks, --model)."
        ),
    ] = None,
    protocol: Annotated[
        str, typer.Option(help=f"Template id: {', '.join(available_templates())}.")
    ] = "pre-task-revealed",
    degree: Annotated[
        int | None, typer.Option(help="Partners per task (random near-regular graph); default all.")
    ] = None,
    samples: Annotated[int, typer.Option(min=1, help="Repeats of each ordered pair.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the design and of every trial.")] = 0,
    n_tasks: Annotated[
        int | None, typer.Option(help="Use this many tasks, sampled evenly across datasets.")
    ] = None,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    max_tokens: Annotated[
        int | None, typer.Option(help="Tokens per answer; default: the template's.")
    ] = None,
    logprobs: Annotated[
        bool, typer.Option(help="Also record p_a, P(first label), from the label token's logprobs.")
    ] = False,
    system_prompt: Annotated[str, typer.Option(help="System prompt for every trial.")] = "",
    condition: Annotated[
        str, typer.Option(help="Condition label written on every row.")
    ] = DEFAULT_CONDITION,
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
    max_answer_chars: Annotated[
        int, typer.Option(help="Longer answers are stored cut to this length (and marked).")
    ] = 100_000,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Trials per engine call and per shard.")
    ] = 256,
    dry_run: Annotated[
        bool, typer.Option(help="Print the number of prompts and an example prompt; run nothing.")
    ] = False,
    active: Annotated[
        bool,
        typer.Option(
            help="Active learning: a random regular graph (--degree), then rounds of fit and "
            "select (see bayespref.workflows.active)."
        ),
    ] = False,
    rounds: Annotated[
        int, typer.Option(min=1, help="Active: most rounds, the first included.")
    ] = 10,
    batch: Annotated[
        int, typer.Option(min=1, help="Active: new pairs per round (both orders).")
    ] = 500,
) -> None:
    """Ask a model to choose between tasks (resumable) and write comparisons.parquet.

    Rerunning the same command completes an interrupted run; exits 1 if trials are still failing.
    """
    from bayespref.data.tasks import load_tasks, stratified_sample

    check_engine(engine)
    if engine == "simulated":
        if truth is None or tasks is not None or model is not None:
            raise CollectError(
                "the simulated engine takes --truth SIMDIR instead of --tasks and --model"
            )
        task_table, model = _simulated_inputs(truth)
    else:
        if tasks is None or model is None:
            raise CollectError(f"the {engine} engine needs --tasks and --model")
        task_table = load_tasks(tasks)
    if n_tasks is not None:
        task_table = stratified_sample(task_table, n_tasks, seed)
    config = CollectConfig(
        engine=engine,
        model=model,
        protocol=protocol,
        degree=degree,
        samples=samples,
        seed=seed,
        temperature=temperature,
        max_tokens=max_tokens,
        logprobs=logprobs,
        system_prompt=system_prompt,
        condition=condition,
        max_answer_chars=max_answer_chars,
    )
    options = options_from(locals())
    if dry_run:
        if active:
            raise CollectError("--dry-run does not apply to an --active run")
        _print_preview(preview(config, task_table, out, options))
        return
    if active:
        _run_active(config, task_table, out, options, batch_size, rounds, batch)
        return
    result = _run_with_progress(config, task_table, out, options, batch_size)
    console.print(
        f"{result.completed} of {result.planned} trials answered; wrote {result.table or out}",
        highlight=False,
    )
    if not result.complete:
        errors.print(
            f"[yellow]warning:[/] {result.errors} trials failed "
            f"(e.g. {escape(str(result.error_example))}); "
            "run the same command again to retry them",
            highlight=False,
            soft_wrap=True,
        )
        raise typer.Exit(code=1)


def _run_with_progress(
    config: CollectConfig,
    task_table: pd.DataFrame,
    out: Path,
    options: EngineOptions,
    batch_size: int,
) -> CollectResult:
    columns = (
        TextColumn("collecting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=errors, transient=False) as bar:
        task = bar.add_task("collect", total=None)

        def update(answered: int, planned: int) -> None:
            bar.update(task, completed=answered, total=planned)

        return collect(config, task_table, out, options, batch_size, update)


def _run_active(
    config: CollectConfig,
    task_table: pd.DataFrame,
    out: Path,
    options: EngineOptions,
    batch_size: int,
    rounds: int,
    batch: int,
) -> None:
    from bayespref.workflows.active import ActiveSettings, RoundState, run_active

    def show(state: RoundState) -> None:
        moved = ""
        if state.rank_corr is not None:
            moved = (
                f", Spearman with the previous round {state.rank_corr:.4f}, "
                f"mean sd down {100 * state.sd_drop:.1f}%"
            )
        console.print(
            f"round {state.round}: {state.pairs} new pairs, {state.trials} trials, "
            f"mean posterior sd of mu {state.mean_sd:.3f}{moved}",
            highlight=False,
            soft_wrap=True,
        )

    settings = ActiveSettings(rounds=rounds, batch=batch)
    result = run_active(config, settings, task_table, out, options, batch_size, on_round=show)
    console.print(
        f"stopped ({result.stopped}) after {len(result.rounds)} rounds; wrote "
        f"{out / 'comparisons.parquet'} and a fit per round",
        highlight=False,
        soft_wrap=True,
    )


def _print_preview(plan: Preview) -> None:
    trial = plan.example
    console.print(
        f"{plan.planned} prompts ({plan.answered} already answered, "
        f"{plan.planned - plan.answered} to ask)",
        highlight=False,
    )
    shown = " first, ".join(trial.task_ids) + (" second" if len(trial.task_ids) == 2 else "")
    console.print(f"example prompt ({shown}, sample {trial.sample}):", highlight=False)
    for message in trial.messages:
        console.print(f"--- {message['role']} ---", highlight=False, markup=False)
        console.print(message["content"], highlight=False, markup=False, soft_wrap=True)
