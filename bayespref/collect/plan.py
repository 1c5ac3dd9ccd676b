"""The trials of a run: its configuration, and each trial's key, seed and messages.

A trial's key hashes everything that changes its answer (engine, model, template and its text,
system prompt, condition, generation settings, seed, sample, tasks and prompts), and its sampling
seed comes from the key, so a rerun plans the same trials and can skip those already answered.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

import pandas as pd

from bayespref.collect.design import pair_design, rating_design
from bayespref.collect.engines import EngineOptions, Generation
from bayespref.collect.engines.vllm import read_chat_template
from bayespref.collect.keys import payload_hash
from bayespref.collect.templates import Template
from bayespref.data.comparisons import DEFAULT_CONDITION
from bayespref.errors import CollectError

MAX_ANSWER_CHARS = 100_000


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
    max_answer_chars: int = MAX_ANSWER_CHARS  # longer answers are stored cut to this, and marked


@dataclass(frozen=True)
class Trial:
    key: str
    task_ids: tuple[str, ...]  # (shown first, shown second), or (task,) for a rating
    sample: int
    seed: int
    messages: tuple[dict[str, str], ...]


def generation_of(config: CollectConfig, template: Template) -> Generation:
    return Generation(
        temperature=config.temperature,
        max_tokens=config.max_tokens or template.max_tokens,
        logprobs=config.logprobs,
    )


def plan(config: CollectConfig, tasks: pd.DataFrame, template: Template) -> list[Trial]:
    """The run's trials in the order they are asked (seeded, so reruns plan the same list)."""
    prompt = dict(zip(tasks["task_id"], tasks["prompt"], strict=True))
    generation = generation_of(config, template)
    if template.kind == "completion" or template.shows_completions:
        use = "bayespref complete" if template.kind == "completion" else "bayespref judge"
        raise CollectError(f"template '{template.id}' is for `{use}`, not for collect")
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
        key = payload_hash(
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
        "max_tokens": generation_of(config, template).max_tokens,
        "template": template.name,
        "template_sha": template.sha,
        "tasks": {"n": len(tasks), "hash": _tasks_hash(tasks)},
    }
    settings = answer_settings(config.engine, options)
    return result | ({"answer_settings": settings} if settings else {})


# What a setting added after a folder was written is taken to have been there.
CONFIG_DEFAULTS = asdict(CollectConfig("", ""))
