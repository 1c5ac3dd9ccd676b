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

from bayespref.collect.engines.base import Generation, Request, Response
from bayespref.collect.templates import Scale
from bayespref.errors import DataError
from bayespref.io.locations import where
from bayespref.io.tables import read_table, require_columns
from bayespref.model.choice import first_choice_probability, first_choice_z

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
    require_columns(truth, ("task_id", "dataset", "mu", "sigma", "refusal_logit"), source)
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


def scale_value(draw: float, scale: Scale) -> int:
    """The allowed value nearest to the scale's middle plus draw / 3 of its half-width."""
    middle, half = (scale.low + scale.high) / 2, (scale.high - scale.low) / 2
    target = middle + half * draw / 3
    allowed = [v for v in range(scale.low, scale.high + 1) if scale.allows(v)]
    return min(allowed, key=lambda v: (abs(v - target), v))


class SimulatedEngine:
    """Answers as the model's choice formula says, from a truth written by `write_simulation`.

    P(first chosen) = lapse / 2 + (1 - lapse) * Phi(z), with z = (mu_a + shift_a - mu_b - shift_b
    + position_bias) / sqrt(sigma_a^2 + sigma_b^2); the lapse is the mean of the two tasks' rates,
    the position bias is global, the mean of the two datasets' biases or the ordered pair's
    (first's dataset, second's), and the shift is the request's condition's utility shift for the
    task's dataset ('default' has none; the truth's other conditions are 'condition_1', ...). A
    trial is refused with probability expit of the pair's mean refusal logit, and is unparsed at
    the truth's unparsed rate. Each answer depends only on its request's seed, so reruns give the
    same answers.
    """

    name = "simulated"
    folds_system = False

    def __init__(
        self,
        truth: pd.DataFrame,
        parameters: dict,
        generation: Generation,
        latency: float = 0.0,
    ) -> None:
        self.index = {task: i for i, task in enumerate(truth["task_id"])}
        self.mu = truth["mu"].to_numpy(dtype=float)
        self.sigma = truth["sigma"].to_numpy(dtype=float)
        self.refusal_logit = truth["refusal_logit"].to_numpy(dtype=float)
        datasets = list(parameters.get("datasets") or sorted(truth["dataset"].unique()))
        self.dataset_idx = truth["dataset"].map({d: i for i, d in enumerate(datasets)}).to_numpy()
        by_pair = parameters.get("position_bias_by_pair")
        by_dataset = parameters.get("position_bias_by_dataset")
        self.position_scope = (
            "pair" if by_pair is not None else "dataset" if by_dataset is not None else "global"
        )
        self.position = np.asarray(
            {"pair": by_pair, "dataset": by_dataset}.get(
                self.position_scope, parameters["position_bias"]
            ),
            dtype=float,
        )
        shifts = [np.zeros(len(datasets)), *parameters.get("condition_shifts", [])]
        self.shifts = np.vstack(shifts)
        self.conditions = ["default", *(f"condition_{c}" for c in range(1, len(shifts)))]
        lapse = float(parameters.get("lapse_rate", 0.0))
        # Per-task rates (truths written since they were added); a pair takes their mean.
        self.lapse = (
            truth["lapse"].to_numpy(float) if "lapse" in truth else np.full(len(truth), lapse)
        )
        self.unparsed_rate = float(parameters.get("config", {}).get("unparsed_rate", 0.0))
        self.generation = generation
        self.latency = latency  # seconds per batch, to rehearse slow engines and interruptions

    def _choice(self, request: Request, rng: np.random.Generator) -> Response:
        a, b = (self.index[task] for task in request.task_ids)
        utility = self.utility(request.condition)
        z = first_choice_z(
            utility, self.sigma, self.position, a, b, self.dataset_idx, self.position_scope
        )
        lapse = (self.lapse[a] + self.lapse[b]) / 2
        p_first = float(first_choice_probability(np.asarray(z), "probit", lapse))
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

    def utility(self, condition: str) -> np.ndarray:
        """Every task's utility under a condition."""
        return self.mu + self.shifts[self.conditions.index(condition), self.dataset_idx]

    def _rating(self, request: Request, rng: np.random.Generator) -> Response:
        scale = request.template.scale
        assert scale is not None
        task = self.index[request.task_ids[0]]
        draw = self.utility(request.condition)[task] + self.sigma[task] * rng.normal()
        return Response(f"<rating>{scale_value(draw, scale)}</rating>")

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        if self.latency:
            time.sleep(self.latency)
        responses = []
        for request in requests:
            unknown = [task for task in request.task_ids if task not in self.index]
            if unknown:
                responses.append(Response(error=f"task '{unknown[0]}' is not in the truth table"))
                continue
            if request.condition not in self.conditions:
                known = ", ".join(self.conditions)
                error = f"condition '{request.condition}' is not in the truth ({known})"
                responses.append(Response(error=error))
                continue
            rng = np.random.default_rng(request.seed)
            answer = self._rating if request.template.kind == "rating" else self._choice
            responses.append(answer(request, rng))
        return responses
