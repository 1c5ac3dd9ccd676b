"""Overdispersion: a pair's repeats agree more than independent trials would.

Two forms. Pair effects ('pair', 'pair-by-dataset', 'pair-by-task') add a latent Normal effect per
unordered pair, shared by its repeats and both its orders. Beta-binomial cells ('beta-binomial')
integrate such an effect out in closed form: a cell's first-chosen probability is drawn once from
Beta(kappa P, kappa (1 - P)) and its repeats share it, so the cell's mean stays P(first) while
small concentrations kappa make repeats unanimous. No latent variable per pair, so no funnel
between a pair's effect and its sd; an ordered cell stands for a pair when each pair is asked in
one order, as in real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
from scipy.special import ndtr

from bayespref.data.choice_data import ChoiceData
from bayespref.model.dataset_pairs import pair_concentration
from bayespref.model.likelihood import beta_binomial_cells_logp
from bayespref.model.repeats import cell_log_concentration, pair_index, shared_probability
from bayespref.model.spec import ModelSpec
from bayespref.model.structure import PRIORS
from bayespref.model.zero_sum import free_tasks, zero_sum_within


def pair_effect(spec: ModelSpec, data: ChoiceData, cells: pd.DataFrame, task_dataset):
    """Each cell's pair effect, in noise units: one Normal(0, sd) effect per unordered pair and
    condition, favouring the same task in both orders and shared by every repeat, so a pair's
    repeats are not independent evidence about the two utilities. With 'pair-by-dataset' a pair
    of datasets d, e has sd^2 = (pair_sd_d^2 + pair_sd_e^2) / 2, with 'pair-by-task' a pair of
    tasks i, j has sd^2 = (pair_sd_i^2 + pair_sd_j^2) / 2."""
    a, b = cells["a_idx"].to_numpy(np.int64), cells["b_idx"].to_numpy(np.int64)
    condition = cells["condition_idx"].to_numpy(np.int64) if "condition_idx" in cells else 0
    pair_idx, n_pairs, orientation = pair_index(a, b, condition, len(data.tasks))
    pm.modelcontext(None).add_coord("pair", np.arange(n_pairs))
    offset = pm.Normal("pair_offset", 0.0, 1.0, dims="pair")
    if spec.overdispersion == "pair":
        sd = pm.HalfNormal("pair_sd", PRIORS["pair_sd"])
    else:
        by_dataset = pm.HalfNormal("pair_sd_dataset", PRIORS["pair_sd"], dims="dataset")
        by_task = by_dataset[task_dataset]
        if spec.overdispersion == "pair-by-task":
            by_task = _pair_sd_by_task(data, by_dataset, task_dataset)
        sd = pt.sqrt((by_task[a] ** 2 + by_task[b] ** 2) / 2)
    return sd * offset[pair_idx] * orientation


def _pair_sd_by_task(data: ChoiceData, by_dataset, task_dataset) -> pt.TensorVariable:
    """Each task's pair-effect sd: its dataset's times exp(spread x offset), the log offsets
    summing to zero within each dataset (so `pair_sd_dataset` is the geometric mean of its
    tasks'). The sd measures how far the task's pairs stray from the utility order, consistently
    over their repeats: task-level inconsistency, with the noise unit still set by repeats."""
    group, dependent = free_tasks(data)
    spread = pm.HalfNormal("pair_sd_spread", PRIORS["pair_sd_spread_sd"])
    free = pm.Normal("pair_sd_offset", 0.0, 1.0, dims="free_task")
    offset = zero_sum_within(free, group, dependent, len(data.datasets))
    return pm.Deterministic(
        "pair_sd_task", by_dataset[task_dataset] * pt.exp(spread * offset), dims="task"
    )


def cell_concentration(
    data: ChoiceData, task_dataset, a_idx, b_idx, pairs: np.ndarray, by_task: bool = False
) -> pt.TensorVariable:
    """Each cell's Beta concentration kappa: the geometric mean of its two tasks' concentrations,
    each its dataset's `concentration_dataset` or, by task, that times exp(spread x offset) with
    log offsets summing to zero within the dataset (so the dataset's is the geometric mean of its
    tasks'). kappa -> infinity is the binomial; kappa = 1 makes five repeats of a P = 0.8 pair
    unanimous 53% of the time, against 33% for independent trials. A task's concentration says
    how consistently the same question about it gets the same answer: task-level inconsistency
    read from repeats, which every pair asks, not from upsets across pairs. `pairs`: each cell's
    ordered pair of datasets (model/dataset_pairs.py), which sets it without a term per task."""
    log_kappa = pm.Normal(
        "log_concentration_dataset",
        PRIORS["log_concentration_mu"],
        PRIORS["log_concentration_sd"],
        dims="dataset",
    )
    pm.Deterministic("concentration_dataset", pt.exp(log_kappa), dims="dataset")
    if not by_task:
        return pair_concentration(log_kappa, pairs)
    group, dependent = free_tasks(data)
    spread = pm.HalfNormal("concentration_spread", PRIORS["concentration_spread_sd"])
    free = pm.Normal("concentration_offset", 0.0, 1.0, dims="free_task")
    offset = spread * zero_sum_within(free, group, dependent, len(data.datasets))
    log_task = log_kappa[task_dataset] + offset
    pm.Deterministic("concentration_task", pt.exp(log_task), dims="task")
    return pt.exp(cell_log_concentration(log_task, a_idx, b_idx))


def beta_binomial_choice_logp(
    k, z, n, log_coefficient, concentration, max_count: int | None = None
):
    """log BetaBinomial(k | n, kappa Phi(z), kappa Phi(-z)) per cell (model/likelihood.py). With
    `max_count`, the largest n of any cell, up to SUMMED_REPEATS, one fused Op whose rising
    factorials are products of their factors; else written out with log-gamma terms."""
    return log_coefficient + beta_binomial_cells_logp(z, concentration, k, n, max_count)


def beta_binomial_choice_random(z, n, log_coefficient, concentration, rng=None, size=None):
    """Replicate cells: each cell's probability from its Beta, then its n trials."""
    return rng.binomial(n, shared_probability(ndtr(z), concentration, rng, size), size=size)
