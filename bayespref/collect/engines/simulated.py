"""An engine that answers from a ground truth (a `bayespref simulate` folder) with the model's
choice formula, writing answer text that goes through the same parser as a real model's."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from bayespref.choice import cdf, first_choice_z
from bayespref.collect.engines.base import Generation, Request, Response
from bayespref.data import DataError, read_table, require_columns, where

TRUTH_FILES = ("tasks.csv", "truth.csv", "truth.json")
REFUSAL_TEXT = "I'm sorry, but I can't help with either of these."
UNPARSED_TEXT = "Both of these look interesting, and each has something to recommend it."


def read_truth(folder: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(tasks, truth, parameters) from a folder written by `write_simulation`."""
    folder = Path(folder)
    missing = [name for name in TRUTH_FILES if not (folder / name).exists()]
    if missing:
        raise DataError(
            f"{where(str(folder))}: not a simulation folder (missing {', '.join(missing)}; "
            "write one with `bayespref simulate`)"
        )
    tasks = read_table(folder / "tasks.csv")
    truth = read_table(folder / "truth.csv")
    source = str(folder / "truth.csv")
    require_columns(truth, ("task_id", "mu", "sigma", "refusal_logit"), source)
    for column in ("mu", "sigma", "refusal_logit"):
        values = pd.to_numeric(truth[column], errors="coerce")
        bad = values.isna().to_numpy()
        if bad.any():
            row = int(np.flatnonzero(bad)[0]) + 1
            raise DataError(f"{where(source, row, column)}: not a number")
        truth[column] = values
    parameters = json.loads((folder / "truth.json").read_text())
    if "position_bias" not in parameters:
        raise DataError(f"{where(str(folder / 'truth.json'), column='position_bias')}: missing")
    return tasks, truth, parameters


class SimulatedEngine:
    """P(first chosen) = Phi((mu_a - mu_b + position_bias) / sqrt(sigma_a^2 + sigma_b^2)); a
    refusal with probability expit of the pair's mean refusal logit; a rating from the task's
    utility. Each answer depends only on its request's seed, so reruns give the same answers."""

    name = "simulated"

    def __init__(
        self,
        truth: pd.DataFrame,
        position_bias: float,
        generation: Generation,
        unparsed_rate: float = 0.0,
        latency: float = 0.0,
    ) -> None:
        self.index = {task: i for i, task in enumerate(truth["task_id"])}
        self.mu = truth["mu"].to_numpy(dtype=float)
        self.sigma = truth["sigma"].to_numpy(dtype=float)
        self.refusal_logit = truth["refusal_logit"].to_numpy(dtype=float)
        self.position_bias = position_bias
        self.generation = generation
        self.unparsed_rate = unparsed_rate
        self.latency = latency  # seconds per batch, to rehearse slow engines and interruptions

    def _choice(self, request: Request, rng: np.random.Generator) -> Response:
        a, b = (self.index[task] for task in request.task_ids)
        z = first_choice_z(
            self.mu, self.sigma, self.position_bias, a, b, None, position_by_dataset=False
        )
        p_first = float(cdf(np.asarray(z), "probit"))
        refused, unparsed, first = rng.random(3) < [
            expit((self.refusal_logit[a] + self.refusal_logit[b]) / 2),
            self.unparsed_rate,
            p_first,
        ]
        p_a = p_first if self.generation.logprobs else None
        label_mass = 1.0 if self.generation.logprobs else None
        if refused:
            return Response(REFUSAL_TEXT, p_a, label_mass)
        if unparsed:
            return Response(UNPARSED_TEXT, p_a, label_mass)
        label = request.template.labels[0 if first else 1]
        if request.template.answer == "xml":
            text = f"I would rather do this one. <choice>{label}</choice>"
        else:
            text = f"Task {label}: Here is my work on this task."
        return Response(text, p_a, label_mass)

    def _rating(self, request: Request, rng: np.random.Generator) -> Response:
        scale = request.template.scale
        assert scale is not None
        task = self.index[request.task_ids[0]]
        draw = self.mu[task] + self.sigma[task] * rng.normal()
        middle, half = (scale.low + scale.high) / 2, (scale.high - scale.low) / 2
        value = int(np.clip(round(middle + half * draw / 3), scale.low, scale.high))
        if value == scale.banned:
            value += 1 if draw > 0 else -1
        return Response(f"<rating>{value}</rating>")

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        if self.latency:
            time.sleep(self.latency)
        responses = []
        for request in requests:
            unknown = [task for task in request.task_ids if task not in self.index]
            if unknown:
                responses.append(Response(error=f"task '{unknown[0]}' is not in the truth table"))
                continue
            rng = np.random.default_rng(request.seed)
            answer = self._rating if request.template.kind == "rating" else self._choice
            responses.append(answer(request, rng))
        return responses
