"""The PyMC model builder for the Thurstonian choice family.

For a cell of n choice trials showing task i first and task j second under condition c, k of
which chose the first:
    z = (mu_ic - mu_jc + beta) / sqrt(sigma_i^2 + sigma_j^2),
    k ~ Binomial(n, eps/2 + (1 - eps) F(z))          (eps = 0 without a lapse term),
or with beta-binomial cells k ~ BetaBinomial(n, kappa F(z), kappa F(-z)) (model/overdispersion.py),
and, when refusals are modelled, the r refusals of the cell ~ Binomial(n + r, logistic of the
mean of the two tasks' refusal propensities), and, given refusal counts of completions, the k_t
of n_t completions of task t refused ~ Binomial(n_t, logistic(a + b (propensity_t + 4))).
Location is identified by zero-sum dataset means (or zero-sum utilities without a hierarchy),
scale by fixing the geometric mean of the dataset noise levels at 1, condition shifts are
measured from the reference condition.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import gammaln

from bayespref.data.choice_data import ChoiceData
from bayespref.model.choice import first_choice_probability
from bayespref.model.conditions import (
    samples_around_the_average,
    shifted_utilities,
    utilities_around_the_average,
)
from bayespref.model.dataset_pairs import (
    dataset_pair_index,
    inverse_noise_scale,
    position_offset,
)
from bayespref.model.likelihood import log_phi, probit_binomial_logp
from bayespref.model.overdispersion import (
    beta_binomial_choice_logp,
    beta_binomial_choice_random,
    cell_concentration,
    pair_effect,
)
from bayespref.model.refusals import refusal_terms
from bayespref.model.repeats import BETA_BINOMIAL, PAIR_EFFECTS
from bayespref.model.spec import ModelSpec
from bayespref.model.structure import (
    PRIORS,
    model_cells,
    models_conditions,
    position_scope,
)
from bayespref.model.zero_sum import free_tasks, zero_sum_or_zero, zero_sum_within


def log_cdf(z: pt.TensorLike, link: str) -> pt.TensorVariable:
    """log F(z) for the probit or logit link."""
    if link == "probit":
        return log_phi(z)
    return -pt.softplus(-pt.as_tensor_variable(z))


def binomial_log_coefficient(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def _log_choice(z, link: str, lapse):
    """log P(first chosen) with a lapse: log(eps/2 + (1 - eps) F(z)), stably."""
    if lapse is None:
        return log_cdf(z, link)
    return pt.logaddexp(pt.log(lapse / 2), pt.log1p(-lapse) + log_cdf(z, link))


def _choice_logp(link: str, with_lapse: bool):
    def logp(k, z, n, log_coefficient, lapse):
        if link == "probit" and not with_lapse:
            return log_coefficient + probit_binomial_logp(z, k, n)
        lapse = lapse if with_lapse else None
        first, second = _log_choice(z, link, lapse), _log_choice(-z, link, lapse)
        return log_coefficient + k * first + (n - k) * second

    return logp


def _choice_random(link: str):
    def random(z, n, log_coefficient, lapse, rng=None, size=None):
        return rng.binomial(n, first_choice_probability(z, link, lapse), size=size)

    return random


def _utility(spec: ModelSpec, data: ChoiceData, task_dataset):
    """Utility per task, and each task's standardised deviation from its dataset mean."""
    n_datasets = len(data.datasets)
    if spec.hierarchy == "dataset":
        spread = pm.HalfNormal("dataset_spread", sigma=PRIORS["dataset_spread_sd"], dims="dataset")
        # Deviations sum to zero within each dataset by construction: one free coordinate per
        # task but its dataset's dependent one (subtracting each dataset's mean from one
        # deviation per task left a direction only the prior saw: bulk ESS 18-86, real set).
        group, dependent = free_tasks(data)
        free_group = group[~dependent]
        if spec.parameterization == "centered":
            # Sampled in units of the spreads' geometric mean: near-deterministic choices pin
            # utilities up to a common scale, and a scale change then moves this one factor
            # (and the spreads) instead of every task's deviation together (benchmarks/real.py).
            # Same prior as deviations ~ Normal(0, spread) and means ~ ZeroSumNormal(5).
            scale = pt.exp(pt.mean(pt.log(spread)))
            scaled = zero_sum_or_zero(
                "dataset_mean_scaled", PRIORS["dataset_mean_sd"] / scale, n_datasets
            )
            mean = pm.Deterministic("dataset_mean", scale * scaled, dims="dataset")
            free = pm.Normal("mu_offset", 0.0, spread[free_group] / scale, dims="free_task")
            centred = scale * zero_sum_within(free, group, dependent, n_datasets)
        else:
            mean = zero_sum_or_zero("dataset_mean", PRIORS["dataset_mean_sd"], n_datasets)
            free = pm.Normal("mu_offset", 0.0, 1.0, dims="free_task")
            centred = zero_sum_within(spread[free_group] * free, group, dependent, n_datasets)
        mu = pm.Deterministic("mu", mean[task_dataset] + centred, dims="task")
        return mu, centred / spread[task_dataset]
    spread = pm.HalfNormal("task_spread", sigma=PRIORS["task_spread_sd"])
    offset = pm.ZeroSumNormal("mu_offset", sigma=1.0, dims="task")
    return pm.Deterministic("mu", spread * offset, dims="task"), offset


def _inverse_noise_scale(
    spec: ModelSpec, data: ChoiceData, task_dataset, a_idx, b_idx, pairs: np.ndarray
):
    """1 / sqrt(sigma_i^2 + sigma_j^2) of each cell; shared noise is the constant 1, the scale
    unit. Noise per dataset is read per ordered pair of datasets (model/dataset_pairs.py)."""
    n_datasets = len(data.datasets)
    if spec.noise == "shared" or (spec.noise == "per-dataset" and n_datasets == 1):
        return 0.5**0.5
    log_dataset = zero_sum_or_zero("log_sigma_dataset", PRIORS["log_sigma_dataset_sd"], n_datasets)
    sigma_dataset = pm.Deterministic("sigma_dataset", pt.exp(log_dataset), dims="dataset")
    if spec.noise == "per-dataset":
        return inverse_noise_scale(sigma_dataset, pairs)
    # A task's log noise is its dataset's level plus an offset; the offsets sum to zero within
    # each dataset, so sigma_dataset is the geometric mean of its tasks' noise and the unit is
    # the geometric mean of all tasks' noise. Non-centred: near-deterministic choices say little
    # about one task's noise, and the offsets then follow their prior's spread.
    group, dependent = free_tasks(data)
    spread = pm.HalfNormal("sigma_spread", sigma=PRIORS["sigma_spread_sd"])
    free = pm.Normal("sigma_offset", 0.0, 1.0, dims="free_task")
    offset = zero_sum_within(free, group, dependent, n_datasets)
    sigma = pm.Deterministic(
        "sigma", pt.exp(log_dataset[task_dataset] + spread * offset), dims="task"
    )
    return 1.0 / pt.sqrt(sigma[a_idx] ** 2 + sigma[b_idx] ** 2)


def _position(spec: ModelSpec, n_datasets: int):
    if spec.position == "none":
        return 0.0
    bias = pm.Normal("position_bias", 0.0, PRIORS["position_sd"])
    if spec.position == "global" or n_datasets == 1:
        return bias
    spread = pm.HalfNormal("position_spread", sigma=PRIORS["position_spread_sd"])
    # Zero-sum offsets: the global bias is the mean of the dataset terms, set by the data. With
    # free offsets it was set only through their prior, with an sd proportional to the spread: a
    # funnel (6 divergences of 4,000 on a 200-task simulation, all at spreads in the top 10%).
    offset = pm.ZeroSumNormal("position_offset", sigma=1.0, dims="dataset")
    by_dataset = pm.Deterministic("position_bias_dataset", bias + spread * offset, dims="dataset")
    if spec.position == "per-dataset":
        return by_dataset
    # Per ordered pair (first's dataset, second's): the mean of the two datasets' terms plus an
    # interaction that sums to zero over each row and each column. Additive terms, one for the
    # first's dataset and one for the second's, would add nothing: x_d + y_e is the mean form
    # (x_d + y_d + x_e + y_e) / 2 plus (x_d - y_d - x_e + y_e) / 2, a difference of dataset
    # means. The interaction holds what is left (README, "Real data").
    pair_spread = pm.HalfNormal("position_pair_spread", sigma=PRIORS["position_pair_spread_sd"])
    interaction = pm.ZeroSumNormal(
        "position_pair_offset", sigma=1.0, dims=("dataset", "second_dataset"), n_zerosum_axes=2
    )
    mean = (by_dataset[:, None] + by_dataset[None, :]) / 2
    return pm.Deterministic(
        "position_bias_pair", mean + pair_spread * interaction, dims=("dataset", "second_dataset")
    )


def _lapse(spec: ModelSpec, data: ChoiceData, task_dataset, a_idx, b_idx):
    """The lapse rate of each cell (0.0 without a lapse term). Per task, a cell's lapse is the
    mean of its two tasks' rates, each pooled by dataset on the logit scale; `lapse_dataset` is
    the mean rate of a dataset's tasks."""
    if spec.lapse == "none":
        return 0.0
    if spec.lapse == "estimated":
        return pm.Beta("lapse", *PRIORS["lapse_beta"])
    mean = pm.Normal(
        "lapse_logit_dataset", PRIORS["lapse_logit_mu"], PRIORS["lapse_logit_sd"], dims="dataset"
    )
    spread = pm.HalfNormal("lapse_spread", PRIORS["lapse_spread_sd"])
    offset = pm.Normal("lapse_offset", 0.0, 1.0, dims="task")
    rate = pm.Deterministic(
        "lapse_task", pt.sigmoid(mean[task_dataset] + spread * offset), dims="task"
    )
    counts = np.bincount(data.task_dataset_idx, minlength=len(data.datasets))
    total = pt.zeros(len(data.datasets))[data.task_dataset_idx].inc(rate)
    pm.Deterministic("lapse_dataset", total / counts, dims="dataset")
    return (rate[a_idx] + rate[b_idx]) / 2


def _cell_distribution(
    spec: ModelSpec, data: ChoiceData, task_dataset, a_idx, b_idx, pairs: np.ndarray, n
):
    """The cells' term beside z (the lapse rate, or the Beta concentration of beta-binomial
    cells) and their log-probability and random functions, for cells of at most max(n) trials."""
    if spec.overdispersion in BETA_BINOMIAL:
        by_task = spec.overdispersion == "beta-binomial-by-task"
        concentration = cell_concentration(data, task_dataset, a_idx, b_idx, pairs, by_task)
        logp = partial(beta_binomial_choice_logp, max_count=int(n.max(initial=0)))
        return concentration, logp, beta_binomial_choice_random
    lapse = _lapse(spec, data, task_dataset, a_idx, b_idx)
    return lapse, _choice_logp(spec.link, spec.lapse != "none"), _choice_random(spec.link)


def build_model(spec: ModelSpec, data: ChoiceData) -> pm.Model:
    """The PyMC model of `spec` on `data`, with coords `task`, `dataset`, `cell` (and
    `condition`, `shifted` when conditions are modelled)."""
    cells = model_cells(spec, data)
    n = cells["n"].to_numpy(np.int64)
    k = cells["k"].to_numpy(np.int64)
    a, b = cells["a_idx"].to_numpy(np.int64), cells["b_idx"].to_numpy(np.int64)
    n_datasets = len(data.datasets)
    n_tasks = len(data.tasks)
    pairs = dataset_pair_index(data.task_dataset_idx, a, b, n_datasets)
    coords = {
        "task": data.tasks["task_id"].to_numpy(),
        "dataset": data.datasets,
        "cell": np.arange(len(cells)),
    }
    if position_scope(spec, n_datasets) == "pair":
        coords["second_dataset"] = data.datasets
    by_condition = models_conditions(spec, data)
    if by_condition:
        coords |= {"condition": data.conditions, "shifted": data.conditions[1:]}
    with pm.Model(coords=coords) as model:
        task_dataset = pm.Data("task_dataset_idx", data.task_dataset_idx, dims="task")
        a_idx = pm.Data("task_a_idx", a, dims="cell")
        b_idx = pm.Data("task_b_idx", b, dims="cell")
        n_data = pm.Data("n_trials", n, dims="cell")

        if by_condition and samples_around_the_average(spec):
            mu, standardised, utility = utilities_around_the_average(data, task_dataset)
        else:
            mu, standardised = _utility(spec, data, task_dataset)
            if by_condition:
                utility = shifted_utilities(spec, data, mu, task_dataset)
        inverse_scale = _inverse_noise_scale(spec, data, task_dataset, a_idx, b_idx, pairs)
        position = _position(spec, n_datasets)
        first, second = a_idx, b_idx
        if by_condition:
            # Flatten (condition, task) so one index picks a task's utility in a cell's condition.
            condition = pm.Data(
                "condition_idx", cells["condition_idx"].to_numpy(np.int64), dims="cell"
            )
            utility = utility.flatten()
            first, second = condition * n_tasks + a_idx, condition * n_tasks + b_idx
        else:
            utility = mu
        # z as model/choice.py's first_choice_z computes it for predictions, plus the pair
        # effect (predictions add its variance): keep the two in step.
        offset = position_offset(position, position_scope(spec, n_datasets), pairs)
        difference = utility[first] - utility[second] + offset
        if spec.overdispersion in PAIR_EFFECTS:
            difference = difference + pair_effect(spec, data, cells, task_dataset)
        z = difference * inverse_scale
        cell_term, logp, random = _cell_distribution(
            spec, data, task_dataset, a_idx, b_idx, pairs, n
        )
        pm.CustomDist(
            "first_chosen",
            z,
            n_data,
            binomial_log_coefficient(n, k),
            cell_term,
            logp=logp,
            random=random,
            observed=k,
            dims="cell",
        )
        if spec.refusal == "modelled":
            refusal_terms(mu, standardised, task_dataset, a_idx, b_idx, cells, data)
    return model
