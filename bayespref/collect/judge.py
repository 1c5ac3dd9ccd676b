"""Judging completions: rater models compare two finished transcripts, or rate one.

Pairs of completions (of the same completion-time condition) come from the collect pair design
over completion ids, so every pair is shown in both orders; every rater judges the same design,
which makes a raters x authors grid on the same tasks. The system prompt in force when a
completion was made is stripped from what the judge sees unless `keep_condition` is set; the
condition is recorded on every row. A run folder like collect's; the table is comparisons.parquet
(choice templates) or ratings.parquet (rating templates), with `rater_model` and the authors.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from bayespref.collect.complete import lazy_engine
from bayespref.collect.design import pair_design, rating_design
from bayespref.collect.engines import EngineOptions
from bayespref.collect.keys import payload_hash, resume_manifest
from bayespref.collect.parse import parse_choice, parse_rating
from bayespref.collect.runner import (
    OUTPUTS,
    CollectConfig,
    CollectResult,
    Trial,
    answer_pending,
    generation_of,
    raise_if_stopped,
    write_outputs,
)
from bayespref.collect.store import RunStore
from bayespref.collect.templates import Template, load_template
from bayespref.data.comparisons import DEFAULT_CONDITION, validate_comparisons
from bayespref.errors import CollectError, DataWarning
from bayespref.io.locations import where
from bayespref.io.tables import require_columns

NEEDED = ("completion_id", "task_id", "dataset", "prompt", "author_model", "condition")
NEEDED += ("system_prompt", "sample", "completion")


@dataclass(frozen=True)
class JudgeConfig:
    engine: str
    raters: tuple[str, ...]
    protocol: str = "post-task-transcripts-revealed"
    degree: int | None = None  # partners per completion (choice); None: all pairs
    samples: int = 1  # repeats of each ordered pair, or of each rating
    seed: int = 0
    temperature: float = 1.0
    max_tokens: int | None = None
    keep_condition: bool = False  # show the completion-time system prompt to the judge
    extra: dict = field(default_factory=dict)  # recorded in the manifest

    def collect_config(self, rater: str) -> CollectConfig:
        return CollectConfig(
            engine=self.engine,
            model=rater,
            protocol=self.protocol,
            seed=self.seed,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )


def check_grid(completions: pd.DataFrame, source: str, allow_unbalanced: bool = False) -> None:
    """Every author must have completed the same tasks and samples under each condition, or a
    comparison of authors (or of raters on authors) mixes in differences between task sets: an
    error naming an author and a missing task, or a DataWarning when `allow_unbalanced`."""
    for condition, group in completions.groupby("condition", sort=True):
        done = {
            author: set(zip(rows["task_id"], rows["sample"], strict=True))
            for author, rows in group.groupby("author_model", sort=True)
        }
        every = set().union(*done.values())
        for author, units in done.items():
            missing = sorted(every - units)
            if missing:
                task, sample = missing[0]
                message = (
                    f"{where(source, column='author_model')}: unbalanced design, author "
                    f"'{author}' has no completion of task '{task}' (sample {sample}) under "
                    f"condition '{condition}' ({len(missing)} missing); authors compared on "
                    "different tasks confound author with task"
                )
                if not allow_unbalanced:
                    raise CollectError(message + " (--allow-unbalanced to judge anyway)")
                warnings.warn(message, DataWarning, stacklevel=2)
                return


def _units(config: JudgeConfig, completions: pd.DataFrame, template: Template) -> list[tuple]:
    """(completion ids, sample) to show, in a seeded order: ordered pairs of completions of
    different tasks within a condition for a choice template, single ones for a rating."""
    if template.kind == "rating":
        if config.degree is not None:
            raise CollectError("--degree applies to choice templates only")
        ids = list(completions["completion_id"])
        return [((c,), s) for c, s in rating_design(ids, config.samples, config.seed)]
    task_of = dict(zip(completions["completion_id"], completions["task_id"], strict=True))
    units = []
    for _, group in completions.groupby("condition", sort=True):
        ids = list(group["completion_id"])
        pairs = pair_design(ids, config.degree, config.samples, config.seed)
        # two completions of one task are not a comparison of tasks: left out of the design
        units += [((a, b), s) for a, b, s in pairs if task_of[a] != task_of[b]]
    return units


def plan_judging(
    config: JudgeConfig, completions: pd.DataFrame, template: Template
) -> dict[str, list[Trial]]:
    """Every rater's trials; Trial.task_ids are the tasks of the completions shown."""
    if not template.shows_completions:
        raise CollectError(f"template '{template.id}' does not show completions; see `collect`")
    by_id = completions.set_index("completion_id")
    generation = generation_of(config.collect_config(config.raters[0]), template)
    units = _units(config, completions, template)
    planned = {}
    for rater in config.raters:
        trials = []
        for ids, sample in units:
            rows = [by_id.loc[c] for c in ids]
            prompts = [_shown_prompt(row, config.keep_condition) for row in rows]
            texts = tuple(str(row["completion"]) for row in rows)
            key = payload_hash(
                {
                    "kind": "judge",
                    "engine": config.engine,
                    "model": rater,
                    "template": template.name,
                    "template_text": template.text,
                    "generation": asdict(generation),
                    "seed": config.seed,
                    "sample": sample,
                    "completions": ids,
                    "prompts": prompts,
                    "texts": texts,
                }
            )[:24]
            content = template.render(*prompts, completions=texts)
            task_ids = tuple(str(row["task_id"]) for row in rows)
            seed = int(key[:8], 16) & 0x7FFFFFFF
            trials.append(
                Trial(key, task_ids, sample, seed, ({"role": "user", "content": content},))
            )
        planned[rater] = trials
    return planned


def _shown_prompt(row: pd.Series, keep_condition: bool) -> str:
    system = str(row["system_prompt"] or "")
    if keep_condition and system:
        return f"(System prompt: {system})\n{row['prompt']}"
    return str(row["prompt"])


def judged_table(
    config: JudgeConfig,
    completions: pd.DataFrame,
    template: Template,
    planned: dict[str, list[Trial]],
    records: dict[str, dict],
) -> pd.DataFrame:
    """The comparisons (or ratings) contract plus rater_model and the authors, in plan order."""
    by_id = completions.set_index("completion_id")
    units = _units(config, completions, template)
    rows = []
    for rater, trials in planned.items():
        for (ids, _), trial in zip(units, trials, strict=True):
            record = records.get(trial.key)
            if record is None or record["error"] is not None:
                continue
            shown = [by_id.loc[c] for c in ids]
            text = record["raw_response"]
            if template.kind == "choice":
                row = {
                    "task_a": shown[0]["task_id"],
                    "task_b": shown[1]["task_id"],
                    "choice": parse_choice(text, template.labels, template.answer),
                    "dataset_a": shown[0]["dataset"],
                    "dataset_b": shown[1]["dataset"],
                }
            else:
                assert template.scale is not None
                row = {
                    "task_id": shown[0]["task_id"],
                    "dataset": shown[0]["dataset"],
                    "rating": parse_rating(text, template.scale),
                    "scale": template.scale.label,
                }
            row |= {
                "condition": shown[0]["condition"],
                "sample": trial.sample,
                "protocol": template.protocol,
                "template": template.name,
                "model": rater,
                "rater_model": rater,
            }
            if template.kind == "choice":
                row |= {"author_model_a": shown[0]["author_model"]}
                row |= {"author_model_b": shown[1]["author_model"]}
                row |= {"completion_a": ids[0], "completion_b": ids[1]}
            else:
                row |= {"author_model": shown[0]["author_model"], "completion_id": ids[0]}
            row |= {"engine": config.engine, "raw_response": text, "seed": trial.seed}
            rows.append(row | {"key": trial.key})
    return pd.DataFrame(rows)


def judge(
    config: JudgeConfig,
    completions: pd.DataFrame,
    out: str | Path,
    options: EngineOptions | None = None,
    batch_size: int = 256,
    source: str = "<completions>",
    allow_unbalanced: bool = False,
) -> CollectResult:
    """Run (or resume) the judging of `completions` into `out` and write its table."""
    require_columns(completions, NEEDED, source)
    check_grid(completions, source, allow_unbalanced)
    out = Path(out)
    template = load_template(config.protocol)
    planned = plan_judging(config, completions, template)
    manifest = {
        "format": 1,
        "config": {
            **asdict(config),
            "raters": list(config.raters),
            "template": template.name,
            "template_sha": template.sha,
            "max_tokens": generation_of(
                config.collect_config(config.raters[0]), template
            ).max_tokens,
            "completions": {"n": len(completions), "hash": _completions_hash(completions)},
        },
        "engine_options": asdict(options or EngineOptions()),
        "template_text": template.text,
    }
    out.mkdir(parents=True, exist_ok=True)
    stopped = None
    with RunStore(out) as store:
        resume_manifest(store, manifest)
        for rater, trials in planned.items():
            engine = lazy_engine(config.collect_config(rater), template, options)
            stopped = answer_pending(store, trials, template, DEFAULT_CONDITION, engine, batch_size)
            if stopped is not None:
                break
        result = _finish(store, config, completions, template, planned, manifest)
    raise_if_stopped(stopped, result, "judgments made")
    return result


def _completions_hash(completions: pd.DataFrame) -> str:
    canonical = completions[list(NEEDED)].sort_values("completion_id")
    return payload_hash(canonical.astype(str).to_numpy().tolist())[:16]


def _finish(
    store: RunStore,
    config: JudgeConfig,
    completions: pd.DataFrame,
    template: Template,
    planned: dict[str, list[Trial]],
    manifest: dict,
) -> CollectResult:
    records = store.records()
    table = judged_table(config, completions, template, planned, records)
    name = OUTPUTS[template.kind]
    if len(table) and template.kind == "choice":
        # raters pooled by design
        validate_comparisons(table, str(store.out / name), pool=True)
    trials = [trial for group in planned.values() for trial in group]
    return write_outputs(store, trials, records, table, name, manifest)
