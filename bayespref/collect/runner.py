"""Plan the trials of a run, ask the engine for the ones not yet answered, and write the table.

Each trial has a key that hashes everything that changes its answer; a rerun skips the keys that
have an answer and retries those that failed, so killing a run and starting it again loses and
repeats nothing. The trial's sampling seed comes from its key, so a resumed run gets the same
answers as one that was never interrupted (for engines that honour seeds).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pandas as pd

from bayespref.collect.design import pair_design, rating_design
from bayespref.collect.engines import Engine, EngineOptions, Generation, Request, Response
from bayespref.collect.engines import make_engine as start_engine
from bayespref.collect.engines.vllm import read_chat_template
from bayespref.collect.parse import parse_rating, read_choice
from bayespref.collect.store import CollectError, RunStore
from bayespref.collect.templates import Template, load_template
from bayespref.data import DEFAULT_CONDITION, validate_comparisons, write_table
from bayespref.tasks import validate_task_set

MANIFEST_FORMAT = 1
FAILED_BATCHES_LIMIT = 3  # consecutive batches that fail whole stop the run
OUTPUTS = {"choice": "comparisons.parquet", "rating": "ratings.parquet"}


@dataclass(frozen=True)
class CollectConfig:
    """Everything that decides which trials are run and what their answers can be."""

    engine: str
    model: str
    protocol: str = "pre-task-revealed"  # a template id (see `available_templates()`)
    degree: int | None = None  # partners per task; None: all pairs
    samples: int = 1  # repeats of each ordered pair (or of each task, for ratings)
    seed: int = 0
    temperature: float = 1.0
    max_tokens: int | None = None  # None: the template's
    logprobs: bool = False
    system_prompt: str = ""
    condition: str = DEFAULT_CONDITION
    max_answer_chars: int = 100_000  # longer answers are stored cut to this length, and marked


@dataclass(frozen=True)
class Trial:
    key: str
    task_ids: tuple[str, ...]  # (shown first, shown second), or (task,) for a rating
    sample: int
    seed: int
    messages: tuple[dict[str, str], ...]


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


def _hash(payload: object) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _generation(config: CollectConfig, template: Template) -> Generation:
    return Generation(
        temperature=config.temperature,
        max_tokens=config.max_tokens or template.max_tokens,
        logprobs=config.logprobs,
    )


def plan(config: CollectConfig, tasks: pd.DataFrame, template: Template) -> list[Trial]:
    """The run's trials in the order they are asked (seeded, so reruns plan the same list)."""
    prompt = dict(zip(tasks["task_id"], tasks["prompt"], strict=True))
    generation = _generation(config, template)
    if template.kind == "choice":
        units = [
            ((a, b), sample)
            for a, b, sample in pair_design(
                list(prompt), config.degree, config.samples, config.seed
            )
        ]
    else:
        if config.degree is not None:
            raise CollectError(f"--degree applies to choice protocols, not to '{template.id}'")
        units = [
            ((task,), sample)
            for task, sample in rating_design(list(prompt), config.samples, config.seed)
        ]
    system = ({"role": "system", "content": config.system_prompt},) if config.system_prompt else ()
    trials = []
    for task_ids, sample in units:
        prompts = [prompt[task] for task in task_ids]
        key = _hash(
            {
                "engine": config.engine,
                "model": config.model,
                "template": template.name,
                "template_text": template.text,
                "system_prompt": config.system_prompt,
                "condition": config.condition,
                "generation": asdict(generation),
                "seed": config.seed,
                "sample": sample,
                "tasks": task_ids,
                "prompts": prompts,
            }
        )[:24]
        user = {"role": "user", "content": template.render(*prompts)}
        trials.append(Trial(key, task_ids, sample, int(key[:8], 16) & 0x7FFFFFFF, (*system, user)))
    return trials


def _tasks_hash(tasks: pd.DataFrame) -> str:
    canonical = tasks[["task_id", "dataset", "prompt"]].sort_values("task_id")
    return hashlib.sha256(canonical.to_csv(index=False).encode()).hexdigest()[:16]


def _package_version() -> str:
    try:
        return version("bayespref")
    except PackageNotFoundError:
        return "unknown"


def answer_settings(engine: str, options: EngineOptions | None) -> dict:
    """Engine settings that change answers (weights' dtype, quantization, chat template), where
    they are not the defaults; unlike concurrency or memory limits, a rerun must match them."""
    if options is None or engine not in ("vllm", "transformers"):
        return {}
    if engine == "transformers":
        settings = {"dtype": options.dtype}
    else:
        vllm = options.vllm
        chat_template = read_chat_template(vllm.chat_template)
        settings = {
            "dtype": None if vllm.dtype == "auto" else vllm.dtype,
            "quantization": vllm.quantization,
            "chat_template_sha": chat_template
            and hashlib.sha256(chat_template.encode()).hexdigest()[:16],
        }
    return {key: value for key, value in settings.items() if value is not None}


def manifest_config(
    config: CollectConfig,
    tasks: pd.DataFrame,
    template: Template,
    options: EngineOptions | None = None,
) -> dict:
    """The part of the manifest a rerun must match."""
    result = {
        **asdict(config),
        "max_tokens": _generation(config, template).max_tokens,
        "template": template.name,
        "template_sha": template.sha,
        "tasks": {"n": len(tasks), "hash": _tasks_hash(tasks)},
    }
    settings = answer_settings(config.engine, options)
    return result | ({"answer_settings": settings} if settings else {})


_DEFAULTS = asdict(CollectConfig("", ""))


def _check_manifest(previous: dict | None, config: dict, out: Path) -> None:
    if previous is None:
        return
    before = previous.get("config", {})
    # A setting added after the folder was written matches it when left at its default.
    before = {key: _DEFAULTS[key] for key in set(config) - set(before) if key in _DEFAULTS} | before
    changed = sorted(key for key in set(before) | set(config) if before.get(key) != config.get(key))
    if changed:
        details = "; ".join(
            f"{key}: {before.get(key)!r} there, {config.get(key)!r} now" for key in changed
        )
        raise CollectError(
            f"'{out / 'manifest.json'}' belongs to a different collection ({details}); rerun with "
            "the same settings to resume it, or choose another --out folder"
        )


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
    with RunStore(out) as store:
        previous = store.read_manifest()
        _check_manifest(previous, manifest["config"], out)
        manifest["created"] = (previous or {}).get("created") or datetime.now(UTC).isoformat()
        if previous and "system_prompt_folded" in previous:
            manifest["system_prompt_folded"] = previous["system_prompt_folded"]
        store.write_manifest(manifest)
        answered = _answered(store.records())
        pending = [trial for trial in trials if trial.key not in answered]
        done = len(trials) - len(pending)
        if progress:
            progress(done, len(trials))
        engine = None
        failed_in_row = 0
        for start in range(0, len(pending), batch_size):
            batch = pending[start : start + batch_size]
            if engine is None:
                engine = start_engine(
                    config.engine,
                    config.model,
                    _generation(config, template),
                    options or EngineOptions(),
                    config.seed,
                )
                manifest["system_prompt_folded"] = bool(
                    config.system_prompt and getattr(engine, "folds_system", False)
                )
                store.write_manifest(manifest)
            responses = _ask(engine, batch, template, config.condition)
            records = [
                _record(t, r, config.max_answer_chars)
                for t, r in zip(batch, responses, strict=True)
            ]
            store.append(records)
            done += sum(response.error is None for response in responses)
            if progress:
                progress(done, len(trials))
            failed_in_row = failed_in_row + 1 if all(r.error for r in responses) else 0
            if failed_in_row == FAILED_BATCHES_LIMIT:
                break
        result = _finish(store, trials, config, template, tasks, manifest)
    if failed_in_row == FAILED_BATCHES_LIMIT:
        raise CollectError(
            f"the engine failed on {FAILED_BATCHES_LIMIT} batches in a row, so the run stopped "
            f"with {result.completed} of {result.planned} trials answered; last error: "
            f"{responses[-1].error}"
        )
    return result


def _finish(
    store: RunStore,
    trials: list[Trial],
    config: CollectConfig,
    template: Template,
    tasks: pd.DataFrame,
    manifest: dict,
) -> CollectResult:
    records = store.records()
    table = _table(trials, records, config, template, tasks)
    path = store.out / OUTPUTS[template.kind]
    if len(table):
        if template.kind == "choice":
            validate_comparisons(table, str(path), tasks)
        write_table(table, path)
    errors = [records[t.key]["error"] for t in trials if records.get(t.key, {}).get("error")]
    result = CollectResult(
        out=store.out,
        table=path if len(table) else None,
        planned=len(trials),
        completed=len(table),
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
    _check_manifest(store.read_manifest(), settings, Path(out))
    answered = _answered(store.records()) if store.shards.is_dir() else set()
    done = sum(trial.key in answered for trial in trials)
    return Preview(planned=len(trials), answered=done, example=trials[0])
