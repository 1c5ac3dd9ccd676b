"""Refusals as their own outcome: per-task refusal propensities, pooled by dataset and correlated
with utility, observed through the refusals of choice trials and, when given, of completions."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from bayespref.data.choice_data import ChoiceData
from bayespref.data.completion_refusals import CompletionRefusals
from bayespref.model.structure import PRIORS, completion_refusal_logit


def _completion_refusals(propensity, completions: CompletionRefusals, task_ids) -> None:
    """Refusals among completions, driven by the same propensity as refusals in choice trials
    through their own intercept and a positive slope: the two protocols refuse at different base
    rates, and a positive slope keeps one meaning for a high propensity (with either sign the
    posterior would have two mirror-image modes); `completion_refusal_logit` says where the
    intercept sits."""
    pm.modelcontext(None).add_coord("completed_task", task_ids[completions.task_idx])
    intercept = pm.Normal(
        "completion_refusal_intercept",
        PRIORS["refusal_mean_mu"],
        PRIORS["completion_refusal_intercept_sd"],
    )
    slope = pm.LogNormal("completion_refusal_slope", 0.0, PRIORS["completion_refusal_log_slope_sd"])
    task = pm.Data("completed_task_idx", completions.task_idx, dims="completed_task")
    pm.Binomial(
        "completion_refused",
        n=pm.Data("n_completions", completions.n, dims="completed_task"),
        logit_p=completion_refusal_logit(intercept, slope, propensity[task]),
        observed=completions.refusals,
        dims="completed_task",
    )


def refusal_terms(mu, standardised, task_dataset, a_idx, b_idx, cells, data: ChoiceData) -> None:
    """Per-task refusal propensities, pooled by dataset and correlated with utility, observed
    through the refusals of choice trials and, when given, of completions."""
    mean = pm.Normal(
        "refusal_mean", PRIORS["refusal_mean_mu"], PRIORS["refusal_mean_sd"], dims="dataset"
    )
    spread = pm.HalfNormal("refusal_spread", PRIORS["refusal_spread_sd"])
    corr = pm.Uniform("refusal_utility_corr", -1.0, 1.0)
    offset = pm.Normal("refusal_offset", 0.0, 1.0, dims="task")
    propensity = pm.Deterministic(
        "refusal_propensity",
        mean[task_dataset] + spread * (corr * standardised + pt.sqrt(1 - corr**2) * offset),
        dims="task",
    )
    centred_mu = mu - mu.mean()
    centred_propensity = propensity - propensity.mean()
    pm.Deterministic(
        "refusal_utility_corr_tasks",
        (centred_mu * centred_propensity).sum()
        / pt.sqrt((centred_mu**2).sum() * (centred_propensity**2).sum()),
    )
    trials = (cells["n"] + cells["r"]).to_numpy(np.int64)
    pm.Binomial(
        "refused",
        n=pm.Data("n_offered", trials, dims="cell"),
        logit_p=(propensity[a_idx] + propensity[b_idx]) / 2,
        observed=cells["r"].to_numpy(np.int64),
        dims="cell",
    )
    if data.completion_refusals is not None:
        _completion_refusals(propensity, data.completion_refusals, data.tasks["task_id"].to_numpy())
