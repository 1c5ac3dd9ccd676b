"""Completions of a tasks table by one or more author models, per condition and sample.

A run folder like `collect`'s (manifest.json, shards, a lock) whose table is `completions.parquet`
(contract in docs/architecture.md). Each completion's key hashes everything that changes it, so a
killed run resumes asking only what is missing, with the seeds an uninterrupted run would use.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from bayespref.collect.engines import Engine, EngineOptions
from bayespref.collect.keys import payload_hash, resume_manifest
from bayespref.collect.runner import (
    CollectConfig,
    CollectResult,
    Trial,
    answer_pending,
    generation_of,
    manifest_config,
    raise_if_stopped,
    start_engine_for,
    write_outputs,
)
from bayespref.collect.store import RunStore
from bayespref.collect.templates import Template, load_template
from bayespref.data.comparisons import DEFAULT_CONDITION
from bayespref.data.tasks import validate_task_set
from bayespref.errors import CollectError

COMPLETIONS = "completions.parquet"
COMPLETION_COLUMNS = (
    "completion_id",
    "task_id",
    "dataset",
    "prompt",
    "author_model",
    "condition",
    "system_prompt",
    "sample",
    "completion",
    "finish_reason",
    "completion_tokens",
    "engine",
    "template",
    "temperature",
    "max_tokens",
    "seed",
)


@dataclass(frozen=True)
class CompleteConfig:
    """Everything that decides which completions are made and what they can be."""

    engine: str
    models: tuple[str, ...]  # the authors
    # (name, system prompt at completion time); the default condition has no system prompt
    conditions: tuple[tuple[str, str], ...] = ((DEFAULT_CONDITION, ""),)
    samples: int = 1
    seed: int = 0
    temperature: float = 1.0
    max_tokens: int | None = None  # None: the template's
    template: str = "completion"
    extra: dict = field(default_factory=dict)  # recorded in the manifest, e.g. the truth's hash

    def __post_init__(self) -> None:
        names = [name for name, _ in self.conditions]
        if not self.models or len(set(self.models)) != len(self.models):
            raise CollectError("give one or more distinct author models")
        if not names or len(set(names)) != len(names):
            raise CollectError("condition names must be distinct (and at least one given)")
        if self.samples < 1:
            raise CollectError(f"samples must be at least 1 (got {self.samples})")

    def collect_config(self, model: str, condition: tuple[str, str]) -> CollectConfig:
        """The collect settings of one author under one condition (for the engine and keys)."""
        return CollectConfig(
            engine=self.engine,
            model=model,
            protocol=self.template,
            samples=self.samples,
            seed=self.seed,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
            system_prompt=condition[1],
            condition=condition[0],
        )


def plan_completions(
    config: CompleteConfig, tasks: pd.DataFrame, template: Template
) -> dict[tuple[str, str], list[Trial]]:
    """The trials of every (author, condition), each list in task and sample order."""
    if template.kind != "completion":
        raise CollectError(f"template '{template.id}' is not a completion template")
    generation = generation_of(config.collect_config(config.models[0], ("", "")), template)
    planned = {}
    for model in config.models:
        for name, system in config.conditions:
            trials = []
            for task, prompt in zip(tasks["task_id"], tasks["prompt"], strict=True):
                for sample in range(config.samples):
                    key = payload_hash(
                        {
                            "kind": "completion",
                            "engine": config.engine,
                            "model": model,
                            "template": template.name,
                            "template_text": template.text,
                            "system_prompt": system,
                            "condition": name,
                            "generation": asdict(generation),
                            "seed": config.seed,
                            "sample": sample,
                            "task": task,
                            "prompt": prompt,
                        }
                    )[:24]
                    user = {"role": "user", "content": template.render(prompt)}
                    messages = (({"role": "system", "content": system},) if system else ()) + (
                        user,
                    )
                    seed = int(key[:8], 16) & 0x7FFFFFFF
                    trials.append(Trial(key, (task,), sample, seed, messages))
            planned[(model, name)] = trials
    return planned


def _manifest(config: CompleteConfig, tasks: pd.DataFrame, template: Template) -> dict:
    base = manifest_config(config.collect_config(config.models[0], ("", "")), tasks, template)
    return {
        "kind": "completions",
        "engine": config.engine,
        "models": list(config.models),
        "conditions": [list(condition) for condition in config.conditions],
        "samples": config.samples,
        "seed": config.seed,
        "temperature": config.temperature,
        "max_tokens": base["max_tokens"],
        "template": base["template"],
        "template_sha": base["template_sha"],
        "tasks": base["tasks"],
        **config.extra,
    }


def completions_table(
    planned: dict[tuple[str, str], list[Trial]],
    records: dict[str, dict],
    config: CompleteConfig,
    template: Template,
    tasks: pd.DataFrame,
) -> pd.DataFrame:
    """One row per answered completion, in plan order (the completions contract)."""
    dataset = dict(zip(tasks["task_id"], tasks["dataset"], strict=True))
    prompt = dict(zip(tasks["task_id"], tasks["prompt"], strict=True))
    system = dict(config.conditions)
    max_tokens = generation_of(config.collect_config(config.models[0], ("", "")), template)
    rows = []
    for (model, condition), trials in planned.items():
        for trial in trials:
            record = records.get(trial.key)
            if record is None or record["error"] is not None:
                continue
            task = trial.task_ids[0]
            rows.append(
                (
                    trial.key,
                    task,
                    dataset[task],
                    prompt[task],
                    model,
                    condition,
                    system[condition],
                    trial.sample,
                    record["raw_response"],
                    record.get("finish_reason"),
                    record.get("completion_tokens"),
                    config.engine,
                    template.name,
                    config.temperature,
                    max_tokens.max_tokens,
                    trial.seed,
                )
            )
    return pd.DataFrame(rows, columns=list(COMPLETION_COLUMNS))


def complete(
    config: CompleteConfig,
    tasks: pd.DataFrame,
    out: str | Path,
    options: EngineOptions | None = None,
    batch_size: int = 64,
    progress: Callable[[int, int], None] | None = None,
) -> CollectResult:
    """Make (or resume) the completions into `out` and write completions.parquet.

    Each author's engine is started when its first missing completion is asked, and only then.
    Completions whose engine call failed are retried by the next run with the same settings.
    """
    out = Path(out)
    tasks = validate_task_set(tasks)
    template = load_template(config.template)
    planned = plan_completions(config, tasks, template)
    manifest = {"format": 1, "config": _manifest(config, tasks, template)}
    manifest["engine_options"] = asdict(options or EngineOptions())
    manifest["template_text"] = template.text
    out.mkdir(parents=True, exist_ok=True)
    total = sum(len(trials) for trials in planned.values())
    stopped = None
    engines: dict[str, Callable[[], Engine]] = {}
    with RunStore(out) as store:
        resume_manifest(store, manifest)
        offset = 0
        for (model, name), trials in planned.items():
            engine = engines.setdefault(
                model, lazy_engine(config.collect_config(model, ("", "")), template, options)
            )
            shown = _shifted(progress, offset, total)
            stopped = answer_pending(
                store, trials, template, name, engine, batch_size, progress=shown
            )
            offset += len(trials)
            if stopped is not None:
                break
        result = finish_completions(store, planned, config, template, tasks, manifest)
    raise_if_stopped(stopped, result, "completions made")
    return result


def _shifted(
    progress: Callable[[int, int], None] | None, offset: int, total: int
) -> Callable[[int, int], None] | None:
    """Progress of one (author, condition) group reported as progress of the whole run."""
    if progress is None:
        return None
    return lambda done, _: progress(offset + done, total)


def lazy_engine(
    config: CollectConfig, template: Template, options: EngineOptions | None
) -> Callable[[], Engine]:
    """A function giving the engine of `config`, started on the first call only."""
    engines: list[Engine] = []

    def engine() -> Engine:
        if not engines:
            engines.append(start_engine_for(config, template, options))
        return engines[0]

    return engine


def finish_completions(
    store: RunStore,
    planned: dict[tuple[str, str], list[Trial]],
    config: CompleteConfig,
    template: Template,
    tasks: pd.DataFrame,
    manifest: dict,
) -> CollectResult:
    """Write completions.parquet from every answered trial and the manifest's status."""
    records = store.records()
    table = completions_table(planned, records, config, template, tasks)
    trials = [trial for group in planned.values() for trial in group]
    return write_outputs(store, trials, records, table, COMPLETIONS, manifest)
