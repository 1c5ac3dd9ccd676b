"""The simulated engine as an author of completions and as a judge of them.

Completions carry a marker, `[simulated author=M task=T condition=C refused=0|1]`, which stands in
for everything a real judge would read in a transcript: who wrote it (self-recognition), the task,
how it went under the completion-time condition, and whether it refused. A simulated judge reads
the markers in its prompt, so the condition is felt through the completion even when the judging
prompt strips the system prompt, as with a real model.

Optional truth (the `completions` entry of truth.json, written by `add_completion_truth`):
  author_effects          {model: effect}: how much raters like that author's completions
  self_preference         added to a transcript's value when the rater wrote it
  post_task_position_bias added to the first transcript's advantage (negative favours the second)
  reasoning_position_bias the same for templates whose protocol asks for reasoning first
  completion_refusal_shift added to a task's refusal logit when completing it
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, ndtr

from bayespref.collect.engines.base import Generation, Request, Response
from bayespref.collect.engines.simulated import TRUTH_FILES, SimulatedEngine, scale_value
from bayespref.io.atomic import write_atomically

MARKER = re.compile(r"\[simulated author=(\S+) task=(\S+) condition=(\S+) refused=([01])\]")
REFUSED_COMPLETION = "I'm sorry, but I can't help with that."
COMPLETION_TEXT = "Here is my work on this task."


def truth_digest(folder: str | Path) -> str:
    """A short hash of a truth folder's files, to tell one simulated world from another."""
    digest = hashlib.sha256(b"".join((Path(folder) / name).read_bytes() for name in TRUTH_FILES))
    return digest.hexdigest()[:12]


def add_completion_truth(
    folder: str | Path,
    author_effects: dict[str, float] | None = None,
    self_preference: float = 0.0,
    post_task_position_bias: float = 0.0,
    reasoning_position_bias: float = 0.0,
    completion_refusal_shift: float = 0.0,
) -> None:
    """Add the completions truth to a `bayespref simulate` folder's truth.json."""
    path = Path(folder) / "truth.json"
    parameters = json.loads(path.read_text())
    parameters["completions"] = {
        "author_effects": dict(author_effects or {}),
        "self_preference": self_preference,
        "post_task_position_bias": post_task_position_bias,
        "reasoning_position_bias": reasoning_position_bias,
        "completion_refusal_shift": completion_refusal_shift,
    }
    write_atomically(path, json.dumps(parameters, indent=2) + "\n")


class AuthorJudgeSimulator(SimulatedEngine):
    """SimulatedEngine that also writes completions and judges transcripts, as `model`."""

    def __init__(
        self,
        truth: pd.DataFrame,
        parameters: dict,
        generation: Generation,
        latency: float = 0.0,
        model: str = "simulator",
    ) -> None:
        super().__init__(truth, parameters, generation, latency)
        self.model = model
        settings = parameters.get("completions", {})
        self.author_effects = {k: float(v) for k, v in settings.get("author_effects", {}).items()}
        self.self_preference = float(settings.get("self_preference", 0.0))
        self.post_bias = float(settings.get("post_task_position_bias", 0.0))
        self.reasoning_bias = float(settings.get("reasoning_position_bias", 0.0))
        self.refusal_shift = float(settings.get("completion_refusal_shift", 0.0))

    def _complete(self, request: Request, rng: np.random.Generator) -> Response:
        task = request.task_ids[0]
        refused = rng.random() < expit(self.refusal_logit[self.index[task]] + self.refusal_shift)
        body = REFUSED_COMPLETION if refused else COMPLETION_TEXT
        marker = f"[simulated author={self.model} task={task} condition={request.condition} "
        return Response(f"{body} {marker}refused={int(refused)}]", finish_reason="stop")

    def _value(self, marker: tuple[str, str, str, str]) -> tuple[float, float]:
        """(value to this rater, noise sd) of a transcript."""
        author, task, condition, _ = marker
        value = self.utility(condition)[self.index[task]] + self.author_effects.get(author, 0.0)
        if author == self.model:
            value += self.self_preference
        return value, self.sigma[self.index[task]]

    def _judge(self, request: Request, rng: np.random.Generator) -> Response:
        markers = MARKER.findall(request.messages[-1]["content"])
        template = request.template
        if template.kind == "rating":
            if template.protocol == "refusal-judge":
                return Response(f"<rating>{markers[0][3]}</rating>", finish_reason="stop")
            value, sd = self._value(markers[0])
            assert template.scale is not None
            rating = scale_value(value + sd * rng.normal(), template.scale)
            return Response(f"<rating>{rating}</rating>", finish_reason="stop")
        (value_a, sd_a), (value_b, sd_b) = self._value(markers[0]), self._value(markers[1])
        bias = self.reasoning_bias if "reasoning" in template.protocol else self.post_bias
        p_first = ndtr((value_a - value_b + bias) / np.hypot(sd_a, sd_b))
        unparsed, first = rng.random(2) < [self.unparsed_rate, p_first]
        if unparsed:
            return Response("Both were fine.", finish_reason="stop")
        label = template.labels[0 if first else 1]
        return Response(f"<choice>{label}</choice>", finish_reason="stop")

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        plain = [r for r in requests if r.template.kind != "completion" and not self._judging(r)]
        answered = iter(super().generate(plain))  # pre-task choices and ratings as before
        responses = []
        for request in requests:
            if request.template.kind != "completion" and not self._judging(request):
                responses.append(next(answered))
                continue
            unknown = self._unknown(request)
            if unknown:
                responses.append(Response(error=unknown))
                continue
            rng = np.random.default_rng(request.seed)
            if request.template.kind == "completion":
                responses.append(self._complete(request, rng))
            else:
                responses.append(self._judge(request, rng))
        return responses

    @staticmethod
    def _judging(request: Request) -> bool:
        return request.template.shows_completions

    def _unknown(self, request: Request) -> str | None:
        if request.template.kind == "completion":
            tasks, conditions = list(request.task_ids), [request.condition]
        else:
            markers = MARKER.findall(request.messages[-1]["content"])
            if len(markers) != (2 if request.template.kind == "choice" else 1):
                return "the prompt does not hold simulated completions"
            tasks, conditions = [m[1] for m in markers], [m[2] for m in markers]
        missing = [task for task in tasks if task not in self.index]
        if missing:
            return f"task '{missing[0]}' is not in the truth table"
        strange = [c for c in conditions if c not in self.conditions]
        if strange:
            return f"condition '{strange[0]}' is not in the truth ({', '.join(self.conditions)})"
        return None
