"""Utilities per (condition, task) when conditions shift them (`conditions = "shifts"`).

The reference condition's utilities are mu; every other condition c shifts each dataset
(`condition_shift[c, d]`) and each task around its dataset's shift, both Normal(0, their level's
spread), one spread per level for all conditions. Choices within a condition only see utility
differences, so only relative shifts are identified: dataset shifts sum to zero over datasets
(a condition's dataset means sum to zero, as the reference's do) and task deviations within each
dataset (`condition_shift` is then the dataset's mean shift). Free, those directions were set by
the prior alone and mixed slowly (benchmarks/conditions.py).
"""

from __future__ import annotations

import pymc as pm
import pytensor.tensor as pt

from bayespref.data.choice_data import ChoiceData
from bayespref.model.spec import ModelSpec
from bayespref.model.structure import PRIORS
from bayespref.model.zero_sum import free_tasks, zero_sum_within

# Shifted conditions' task deviations around the average are sampled partially non-centred
# (Papaspiliopoulos, Roberts and Skold 2007): offset ~ Normal(0, spread^c) and deviation =
# spread^(1 - c) offset, the same prior for every c. Centred (c = 1), their spread mixed slowest
# of all quantities, 0.10-0.15 ESS per draw on benchmarks/conditions.py's design (13 conditions,
# about 120 training trials per task and condition), so drawing to the trust target took up to
# 1,500 draws per chain. c = 0.75 gave it 0.20-0.24 with trees as short as centred on both
# seeds; c = 0.5 gave 0.34-0.51 but deeper trees (README, "Condition shifts"). Non-centred
# (c = 0) took 127 steps per draw against 31 (measured with binomial cells). Once tuning pooled
# its early mass matrices and calibrated its steps (inference/), trees were 31 steps at c = 0.6
# too, and over seeds 0-5 the spread mixed at 0.21-0.58 ESS per draw against 0.15-0.41 at 0.75
# and the fits reached the trust thresholds in 4,000 draws per chain in all against 4,900.
TASK_DEVIATION_CENTRING = 0.6


def without_joint_mode(spec: ModelSpec) -> str | None:
    """Why `spec`'s joint posterior has no mode for a Laplace approximation, or None: centred
    shifts' spreads collapse towards zero with their shifts (inference/approx.py sets only the
    utility spread by empirical Bayes)."""
    if spec.conditions == "shifts" and spec.parameterization == "centered":
        return f"model '{spec.name}' has centred condition shifts, with no joint mode"
    return None


def samples_around_the_average(spec: ModelSpec) -> bool:
    """Whether the reference's levels are sampled through the average over all conditions:
    centred dataset hierarchies, where every condition's choices pin each task's utility."""
    return spec.parameterization == "centered" and spec.hierarchy == "dataset"


def split_average(average, free_shifts, reference_sd, shift_sd, n_shifted: int):
    """The reference's level and the shifts of the other K conditions from the level averaged
    over all K + 1 conditions and the shifts' free part (axis 0: shifted conditions).

    With reference ~ Normal(0, t) and shifts iid Normal(0, s), the average A = reference +
    w sum(shifts), w = 1 / (K + 1), is Normal(0, v), v = t^2 + w^2 K s^2, and given A the shifts
    are k A + (I - c 11') y with y iid Normal(0, s), k = w s^2 / v and c = (1 - t / sqrt(v)) / K
    (so that their covariance is s^2 I - (w s^2)^2 / v 11'). Sampling A ~ Normal(0, sqrt(v)) and
    y ~ Normal(0, s) is the same joint prior, written so that one coordinate is what all
    conditions' choices pin and each other mostly moves one condition's utilities."""
    weight = 1.0 / (n_shifted + 1)  # a Python float: computed from a shape it was float32
    total_sd = average_sd(reference_sd, shift_sd, n_shifted)
    slope = weight * shift_sd**2 / total_sd**2
    correction = (1.0 - reference_sd / total_sd) / n_shifted
    shifts = slope * average[None] + free_shifts - correction * free_shifts.sum(axis=0)[None]
    return average - weight * shifts.sum(axis=0), shifts


def average_sd(reference_sd, shift_sd, n_shifted: int):
    """The sd of a level averaged over the reference and n_shifted shifted conditions."""
    return pt.sqrt(reference_sd**2 + n_shifted * shift_sd**2 / (n_shifted + 1) ** 2)


def utilities_around_the_average(data: ChoiceData, task_dataset):
    """mu (the reference's utilities), each task's standardised deviation from its dataset mean
    in the reference, and the utilities per (condition, task), for centred dataset hierarchies.

    Sampled as written (mu, then the shifts), the reference's levels are pinned by its own
    choices alone while moving one the other way with every condition's shift of it changes only
    the reference's likelihood: with 13 conditions those directions had 8-11 times the others'
    posterior variance, which a diagonal mass matrix cannot follow (README, "Condition shifts").
    Each level
    (dataset means, task deviations) is sampled instead as its average over all conditions and
    the shifts given it (`split_average`): the same prior."""
    n_datasets, n_shifted = len(data.datasets), len(data.conditions) - 1
    dataset_spread = pm.HalfNormal("dataset_spread", PRIORS["dataset_spread_sd"], dims="dataset")
    task_spread = pm.HalfNormal("condition_task_spread", PRIORS["condition_task_spread_sd"])
    group, dependent = free_tasks(data)
    reference_sd = dataset_spread[group[~dependent]]
    average = pm.Normal(
        "mu_offset_average",
        0.0,
        average_sd(reference_sd, task_spread, n_shifted),
        dims="free_task",
    )
    offset = pm.Normal(
        "condition_task_offset",
        0.0,
        task_spread**TASK_DEVIATION_CENTRING,
        dims=("shifted", "free_task"),
    )
    free = task_spread ** (1 - TASK_DEVIATION_CENTRING) * offset  # Normal(0, task_spread)
    reference, shifted = split_average(average, free, reference_sd, task_spread, n_shifted)
    # Zero sums within each (condition, dataset): per row.
    rows = pt.concatenate([reference[None], shifted])
    deviations = zero_sum_within(rows, group, dependent, n_datasets)
    means = _dataset_levels(n_datasets, n_shifted)
    mu = pm.Deterministic("mu", means[0][task_dataset] + deviations[0], dims="task")
    shifts = means[1:][:, task_dataset] + deviations[1:]
    utilities = pm.Deterministic(
        "mu_condition", pt.concatenate([mu[None], mu[None] + shifts]), dims=("condition", "task")
    )
    return mu, deviations[0] / dataset_spread[task_dataset], utilities


def _dataset_levels(n_datasets: int, n_shifted: int):
    """Rows: the reference's dataset means, then each shifted condition's dataset shifts."""
    if n_datasets == 1:
        pm.Deterministic("dataset_mean", pt.zeros(1), dims="dataset")
        pm.Deterministic("condition_shift", pt.zeros((n_shifted, 1)), dims=("shifted", "dataset"))
        return pt.zeros((n_shifted + 1, 1))
    spread = pm.HalfNormal("condition_dataset_spread", PRIORS["condition_dataset_spread_sd"])
    reference_sd = PRIORS["dataset_mean_sd"]
    average = pm.ZeroSumNormal(
        "dataset_mean_average", sigma=average_sd(reference_sd, spread, n_shifted), dims="dataset"
    )
    free = pm.ZeroSumNormal("condition_shift_free", sigma=spread, dims=("shifted", "dataset"))
    reference, shifts = split_average(average, free, reference_sd, spread, n_shifted)
    pm.Deterministic("dataset_mean", reference, dims="dataset")
    pm.Deterministic("condition_shift", shifts, dims=("shifted", "dataset"))
    return pt.concatenate([reference[None], shifts])


def shifted_utilities(spec: ModelSpec, data: ChoiceData, mu, task_dataset):
    """Utilities per (condition, task) around a given mu, for the other parameterizations:
    non-centred (`full`), where a few trials per task and condition leave the deviations to the
    prior (SBC: README), or centred without a dataset hierarchy."""
    n_datasets = len(data.datasets)
    n_shifted = len(data.conditions) - 1
    centred = spec.parameterization == "centered"
    by_dataset = pt.zeros((n_shifted, 1))
    if n_datasets > 1:
        spread = pm.HalfNormal("condition_dataset_spread", PRIORS["condition_dataset_spread_sd"])
        dims = ("shifted", "dataset")
        if centred:
            by_dataset = pm.ZeroSumNormal("condition_shift", sigma=spread, dims=dims)
        else:
            offset = pm.ZeroSumNormal("condition_dataset_offset", sigma=1.0, dims=dims)
            by_dataset = spread * offset
    if not centred or n_datasets == 1:
        by_dataset = pm.Deterministic("condition_shift", by_dataset, dims=("shifted", "dataset"))
    group, dependent = free_tasks(data)
    task_spread = pm.HalfNormal("condition_task_spread", PRIORS["condition_task_spread_sd"])
    free = pm.Normal(
        "condition_task_offset", 0.0, task_spread if centred else 1.0, dims=("shifted", "free_task")
    )
    deviation = zero_sum_within(free, group, dependent, n_datasets)  # per row
    if not centred:
        deviation = task_spread * deviation
    shifted = mu[None, :] + by_dataset[:, task_dataset] + deviation
    return pm.Deterministic(
        "mu_condition", pt.concatenate([mu[None, :], shifted]), dims=("condition", "task")
    )
