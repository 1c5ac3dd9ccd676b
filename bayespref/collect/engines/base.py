"""What every engine takes and gives back, and reading P(first label) from token logprobs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bayespref.collect.templates import Template


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
    finish_reason: str | None = None


class Engine(Protocol):
    name: str

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
