"""What every engine takes and gives back, and reading P(first label) from token logprobs."""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Protocol

from bayespref.collect.templates import Template
from bayespref.errors import CollectError


def import_extra(modules: Sequence[str], needed_for: str, install: str) -> list[ModuleType]:
    """Import an optional dependency of an engine, or say which extra installs it."""
    try:
        return [importlib.import_module(name) for name in modules]
    except ImportError as error:
        raise CollectError(f"{needed_for}: pip install {install}") from error


@dataclass(frozen=True)
class Generation:
    """Sampling settings shared by all requests of a run."""

    temperature: float = 1.0
    max_tokens: int = 32
    logprobs: bool = False  # also report P(first label) from the label token's top logprobs
    top_logprobs: int = 20


@dataclass(frozen=True)
class Request:
    key: str
    messages: tuple[dict[str, str], ...]  # chat messages: optional system, then user
    seed: int
    task_ids: tuple[str, ...]  # (first, second) for a choice, (task,) for a rating
    template: Template
    condition: str = "default"  # real engines see it through the system prompt only


@dataclass(frozen=True)
class Response:
    text: str = ""
    p_a: float | None = None  # P(first label) / P(either label), from logprobs
    label_mass: float | None = None  # P(either label) at that token
    error: str | None = None  # the engine failed; the trial is retried on the next run
    finish_reason: str | None = None  # "stop", "length" (cut at max_tokens), ...; None: unknown
    refused: bool = False  # the server marked the answer a refusal (OpenAI's message.refusal)
    completion_tokens: int | None = None  # tokens generated; None: the engine does not say


class Engine(Protocol):
    name: str
    # True when the chat template has no system role, so the system prompt is sent as the
    # opening of the first user message instead (see `fold_system`).
    folds_system: bool

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        """One response per request, in order; a failed request gives a Response with `error`."""
        ...


def label_probability(
    sampled: Sequence[str],
    alternatives: Sequence[Sequence[tuple[str, float]]],
    labels: tuple[str, str],
) -> tuple[float | None, float | None]:
    """(p_a, label_mass) at the first generated token that is a label.

    `sampled[i]` is the text of the i-th generated token and `alternatives[i]` its top
    (token text, logprob) pairs. Token texts are compared without surrounding spaces, so "A"
    and " A" both count as label A; probabilities of several such tokens add up. Reading the
    first label token rather than the first token covers answers that open with "Task A:" or
    "<choice>A". None when no generated token is a label or the label mass is zero.
    """
    for token, top in zip(sampled, alternatives, strict=False):
        if token.strip() not in labels:
            continue
        mass = dict.fromkeys(labels, 0.0)
        for text, logprob in top:
            if text.strip() in mass:
                mass[text.strip()] += math.exp(logprob)
        total = mass[labels[0]] + mass[labels[1]]
        return (mass[labels[0]] / total, total) if total > 0 else (None, None)
    return None, None


def fold_system(messages: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The messages with a leading system message moved into the first user message, for chat
    templates that have no system role (they raise on one, or drop it)."""
    if not messages or messages[0]["role"] != "system":
        return list(messages)
    system, rest = messages[0]["content"], list(messages[1:])
    for i, message in enumerate(rest):
        if message["role"] == "user":
            rest[i] = {"role": "user", "content": f"{system}\n\n{message['content']}"}
            return rest
    return [{"role": "user", "content": system}, *rest]


def template_has_system_role(render: Callable[[list[dict[str, str]]], str]) -> bool:
    """Whether a chat template keeps a system message: `render` (a tokenizer's
    apply_chat_template without tokenizing) must not raise on one and must show its text."""
    probe = "bayespref-system-probe"
    try:
        text = render([{"role": "system", "content": probe}, {"role": "user", "content": "hi"}])
    except Exception:  # templates reject a system role by raising from Jinja, in various types
        return False
    return probe in str(text)
