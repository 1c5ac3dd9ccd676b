"""Ask the engine for the planned trials not yet answered, and write the table.

A rerun skips the trial keys that have an answer (collect/plan.py) and retries those that failed,
so killing a run and starting it again loses and repeats nothing. The trial's sampling seed comes
from its key, so a resumed run gets the same answers as one that was never interrupted (for
engines that honour seeds).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from bayespref.collect.engines import Engine, EngineOptions, Request, Response
from bayespref.collect.engines import make_engine as start_engine
from bayespref.collect.keys import check_manifest, resume_manifest
from bayespref.collect.parse import parse_rating, read_choice
from bayespref.collect.plan import (
    CONFIG_DEFAULTS,
    MAX_ANSWER_CHARS,
    CollectConfig,
    Trial,
    generation_of,
    manifest_config,
    plan,
)
from bayespref.collect.store import OUTPUTS, RunStore
from bayespref.collect.templates import Template, load_template
from bayespref.data.comparisons import validate_comparisons
from bayespref.data.tasks import validate_task_set
from bayespref.errors import CollectError
from bayespref.io.tables import write_table

MANIFEST_FORMAT = 1
FAILED_BATCHES_LIMIT = 3  # consecutive batches that fail whole stop the run


@dataclass(frozen=True)
class CollectResult:
    out: Path
    table: Path | None  # the comparisons (or ratings) file; None until a trial has an answer
    planned: int
    completed: int
    errors: int
    error_example: str | None  # one of the errors still unresolved

    @property
    def complete(self) -> bool:
        return self.completed == self.planned


def _package_version() -> str:
    try:
        return version("bayespref")
    except PackageNotFoundError:
        return "unknown"


def _answered(records: dict[str, dict]) -> set[str]:
    return {key for key, record in records.items() if record["error"] is None}


def _record(trial: Trial, response: Response, max_chars: int) -> dict:
    text = response.text
    return {
        "key": trial.key,
        "task_ids": list(trial.task_ids),
        "sample": trial.sample,
        "seed": trial.seed,
        "raw_response": text[:max_chars],
        "raw_chars": len(text),  # above max_chars when the stored text was cut
        "p_a": response.p_a,
        "label_mass": response.label_mass,
        "finish_reason": response.finish_reason,
        "refused": response.refused,
        "completion_tokens": response.completion_tokens,
        "error": response.error,
    }


def _table(
    trials: list[Trial],
    records: dict[str, dict],
    config: CollectConfig,
    template: Template,
    tasks: pd.DataFrame,
) -> pd.DataFrame:
    """One row per answered trial, in plan order, in the comparisons (or ratings) contract."""
    dataset = dict(zip(tasks["task_id"], tasks["dataset"], strict=True))
    rows = []
    for trial in trials:
        record = records.get(trial.key)
        if record is None or record["error"] is not None:
            continue
        text = record["raw_response"]
        if template.kind == "choice":
            first, second = trial.task_ids
            reading = read_choice(text, template.labels, template.answer)
            row = {
                "task_a": first,
                "task_b": second,
                "choice": "refusal" if record.get("refused") else reading.choice,
                "refused_chosen": reading.refused_chosen,
                "dataset_a": dataset[first],
                "dataset_b": dataset[second],
            }
        else:
            assert template.scale is not None
            row = {
                "task_id": trial.task_ids[0],
                "dataset": dataset[trial.task_ids[0]],
                "rating": None if record.get("refused") else parse_rating(text, template.scale),
                "scale": template.scale.label,
            }
        rows.append(
            row
            | {
                "condition": config.condition,
                "sample": trial.sample,
                "protocol": template.protocol,
                "template": template.name,
                "model": config.model,
                "engine": config.engine,
                "raw_response": text,
                "raw_truncated": record.get("raw_chars", len(text)) > len(text),
                "finish_reason": record.get("finish_reason"),
                "p_a": record["p_a"],
                "label_mass": record["label_mass"],
                "seed": trial.seed,
                "key": trial.key,
            }
        )
    frame = pd.DataFrame(rows)
    if template.kind == "rating":
        return frame.drop(columns=["p_a", "label_mass"])
    return frame


def _ask(engine: Engine, trials: list[Trial], template: Template, condition: str) -> list[Response]:
    requests = [Request(t.key, t.messages, t.seed, t.task_ids, template, condition) for t in trials]
    try:
        return engine.generate(requests)
    except Exception as error:  # recorded for each trial and retried by the next run
        return [Response(error=f"{type(error).__name__}: {error}")] * len(trials)


def start_engine_for(
    config: CollectConfig, template: Template, options: EngineOptions | None = None
) -> Engine:
    """The engine a configuration asks for, with the template's generation settings."""
    return start_engine(
        config.engine,
        config.model,
        generation_of(config, template),
        options or EngineOptions(),
        config.seed,
    )


def answer_pending(
    store: RunStore,
    trials: list[Trial],
    template: Template,
    condition: str,
    engine: Callable[[], Engine],
    batch_size: int,
    max_answer_chars: int = MAX_ANSWER_CHARS,
    progress: Callable[[int, int], None] | None = None,
) -> str | None:
    """Ask for every trial without an answer in the store, a batch at a time, appending each
    batch's records (answers cut to `max_answer_chars`, and marked so). `engine()` gives the
    engine, started when first needed. Returns None, or
    the last error when FAILED_BATCHES_LIMIT batches in a row failed whole (the loop then stops).

    `progress(answered, planned)` is called before the first batch and after each."""
    if batch_size < 1:
        raise CollectError(f"the batch size must be at least 1, not {batch_size}")
    answered = _answered(store.records())
    pending = [trial for trial in trials if trial.key not in answered]
    done = len(trials) - len(pending)
    if progress:
        progress(done, len(trials))
    failed_in_row = 0
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        responses = _ask(engine(), batch, template, condition)
        records = [_record(t, r, max_answer_chars) for t, r in zip(batch, responses, strict=True)]
        store.append(records)
        done += sum(response.error is None for response in responses)
        if progress:
            progress(done, len(trials))
        failed_in_row = failed_in_row + 1 if all(r.error for r in responses) else 0
        if failed_in_row == FAILED_BATCHES_LIMIT:
            return responses[-1].error
    return None


def collect(
    config: CollectConfig,
    tasks: pd.DataFrame,
    out: str | Path,
    options: EngineOptions | None = None,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> CollectResult:
    """Run (or resume) a collection into `out` and write its comparisons or ratings table.

    `progress(answered, planned)` is called after each batch. Trials whose engine call failed are
    recorded and retried by the next run with the same settings; after FAILED_BATCHES_LIMIT
    batches in a row fail entirely, the run stops with a CollectError.
    """
    out = Path(out)
    tasks = validate_task_set(tasks)
    template = load_template(config.protocol)
    trials = plan(config, tasks, template)
    manifest = {
        "format": MANIFEST_FORMAT,
        "config": manifest_config(config, tasks, template, options),
        "engine_options": asdict(options or EngineOptions()),
        "template_text": template.text,
        "bayespref_version": _package_version(),
    }
    out.mkdir(parents=True, exist_ok=True)
    engines: list[Engine] = []
    with RunStore(out) as store:

        def engine() -> Engine:
            if not engines:
                engines.append(start_engine_for(config, template, options))
                folded = getattr(engines[0], "folds_system", False)
                manifest["system_prompt_folded"] = bool(config.system_prompt and folded)
                store.write_manifest(manifest)
            return engines[0]

        previous = resume_manifest(store, manifest, CONFIG_DEFAULTS)
        if previous and "system_prompt_folded" in previous:
            manifest["system_prompt_folded"] = previous["system_prompt_folded"]
            store.write_manifest(manifest)
        stopped = answer_pending(
            store,
            trials,
            template,
            config.condition,
            engine,
            batch_size,
            config.max_answer_chars,
            progress,
        )
        result = finish_run(store, trials, config, template, tasks, manifest)
    raise_if_stopped(stopped, result, "trials answered")
    return result


def raise_if_stopped(stopped: str | None, result: CollectResult, made: str) -> None:
    """A CollectError when the answer loop stopped on `stopped`, the last error, after
    FAILED_BATCHES_LIMIT batches in a row failed whole; `made` names what was counted."""
    if stopped is not None:
        raise CollectError(
            f"the engine failed on {FAILED_BATCHES_LIMIT} batches in a row, so the run stopped "
            f"with {result.completed} of {result.planned} {made}; last error: {stopped}"
        )


def finish_run(
    store: RunStore,
    trials: list[Trial],
    config: CollectConfig,
    template: Template,
    tasks: pd.DataFrame,
    manifest: dict,
) -> CollectResult:
    """Write the table of every answered trial and the manifest's status."""
    records = store.records()
    table = _table(trials, records, config, template, tasks)
    name = OUTPUTS[template.kind]
    if len(table) and template.kind == "choice":
        validate_comparisons(table, str(store.out / name), tasks)
    return write_outputs(store, trials, records, table, name, manifest)


def write_outputs(
    store: RunStore,
    trials: list[Trial],
    records: dict[str, dict],
    table: pd.DataFrame,
    name: str,
    manifest: dict,
) -> CollectResult:
    """Write the run's table as `name` in its folder (when it has rows) and its status into the
    manifest."""
    path = store.out / name
    if len(table):
        write_table(table, path)
    return record_status(store, trials, records, path if len(table) else None, manifest)


def record_status(
    store: RunStore,
    trials: list[Trial],
    records: dict[str, dict],
    table: Path | None,
    manifest: dict,
) -> CollectResult:
    """The run's result (answered, failed, planned), also written into its manifest."""
    errors = [records[t.key]["error"] for t in trials if records.get(t.key, {}).get("error")]
    answered = _answered(records)
    result = CollectResult(
        out=store.out,
        table=table,
        planned=len(trials),
        completed=sum(trial.key in answered for trial in trials),
        errors=len(errors),
        error_example=errors[0] if errors else None,
    )
    manifest["status"] = {
        "planned": result.planned,
        "completed": result.completed,
        "errors": result.errors,
        "complete": result.complete,
        "updated": datetime.now(UTC).isoformat(),
    }
    store.write_manifest(manifest)
    return result


@dataclass(frozen=True)
class Preview:
    planned: int
    answered: int  # already in the folder from an earlier run
    example: Trial


def preview(
    config: CollectConfig,
    tasks: pd.DataFrame,
    out: str | Path,
    options: EngineOptions | None = None,
) -> Preview:
    """What `collect` would ask, without starting an engine or writing anything."""
    tasks = validate_task_set(tasks)
    template = load_template(config.protocol)
    trials = plan(config, tasks, template)
    store = RunStore(out)
    settings = manifest_config(config, tasks, template, options)
    check_manifest(store.read_manifest(), settings, Path(out), CONFIG_DEFAULTS)
    answered = _answered(store.records()) if store.shards.is_dir() else set()
    done = sum(trial.key in answered for trial in trials)
    return Preview(planned=len(trials), answered=done, example=trials[0])
