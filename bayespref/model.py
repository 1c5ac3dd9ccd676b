"""The PyMC model builder for the Thurstonian choice family.

For a cell of n trials showing task i first and task j second, k of which chose the first:
    z = (mu_i - mu_j + beta) / sqrt(sigma_i^2 + sigma_j^2),   k ~ Binomial(n, F(z)).
Location is identified by zero-sum dataset means (or zero-sum utilities without a hierarchy), scale
by fixing the geometric mean of the dataset noise levels at 1.
"""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor.tensor as pt
from scipy.special import gammaln

from bayespref.choice import cdf, first_choice_z
from bayespref.data import ChoiceData
from bayespref.spec import ModelSpec

# Below this z the asymptotic series of log Phi replaces log(erfc/2); both are accurate there.
_LOG_PHI_SWITCH = -10.0
_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)

# Utilities are in units of the noise sigma. Real choices are often nearly deterministic, so
# spreads of 5-10 sigma occur: the scales below leave room for that.
PRIORS = {
    "dataset_mean_sd": 5.0,
    "dataset_spread_sd": 5.0,
    "task_spread_sd": 5.0,  # utility spread without a dataset hierarchy
    "log_sigma_dataset_sd": 0.5,
    "sigma_spread_sd": 0.5,
    "position_sd": 1.0,
    "position_spread_sd": 0.25,
}


def log_phi(z: pt.TensorLike) -> pt.TensorVariable:
    """log Phi(z), finite with finite gradients for any z, and JAX-compatible (no erfcx)."""
    z = pt.as_tensor_variable(z)
    upper = pt.maximum(z, _LOG_PHI_SWITCH)
    lower = pt.minimum(z, _LOG_PHI_SWITCH)
    direct = pt.log(pt.erfc(-upper / np.sqrt(2.0)) / 2.0)
    inverse_square = 1.0 / lower**2
    asymptotic = (
        -0.5 * lower**2
        - pt.log(-lower)
        - _HALF_LOG_2PI
        + pt.log1p(-inverse_square + 3.0 * inverse_square**2 - 15.0 * inverse_square**3)
    )
    return pt.switch(z < _LOG_PHI_SWITCH, asymptotic, direct)


def log_cdf(z: pt.TensorLike, link: str) -> pt.TensorVariable:
    """log F(z) for the probit or logit link."""
    if link == "probit":
        return log_phi(z)
    return -pt.softplus(-pt.as_tensor_variable(z))


def binomial_log_coefficient(n: np.ndarray, k: np.ndarray) -> np.ndarray:
    return gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)


def _choice_logp(link: str):
    def logp(k, z, n, log_coefficient):
        return log_coefficient + k * log_cdf(z, link) + (n - k) * log_cdf(-z, link)

    return logp


def _choice_random(link: str):
    def random(z, n, log_coefficient, rng=None, size=None):
        return rng.binomial(n, cdf(z, link), size=size)

    return random


def _zero_sum_or_zero(name: str, sigma: float, n_datasets: int) -> pt.TensorVariable:
    """A zero-sum vector over datasets; with one dataset it is the constant 0."""
    if n_datasets > 1:
        return pm.ZeroSumNormal(name, sigma=sigma, dims="dataset")
    return pm.Deterministic(name, pt.zeros(1), dims="dataset")


def _centred_within(values, group, n_groups: int):
    """Subtract each group's mean, so dataset means of mu are exactly the dataset_mean term."""
    sums = pt.inc_subtensor(pt.zeros(n_groups)[group], values)
    counts = np.bincount(group, minlength=n_groups)
    return values - (sums / counts)[group]


def _utility(spec: ModelSpec, data: ChoiceData, task_dataset) -> pt.TensorVariable:
    n_datasets = len(data.datasets)
    if spec.hierarchy == "dataset":
        mean = _zero_sum_or_zero("dataset_mean", PRIORS["dataset_mean_sd"], n_datasets)
        spread = pm.HalfNormal("dataset_spread", sigma=PRIORS["dataset_spread_sd"], dims="dataset")
        if spec.parameterization == "centered":
            deviation = pm.Normal("mu_offset", 0.0, spread[task_dataset], dims="task")
        else:
            deviation = spread[task_dataset] * pm.Normal("mu_offset", 0.0, 1.0, dims="task")
        centred = _centred_within(deviation, data.task_dataset_idx, n_datasets)
        return pm.Deterministic("mu", mean[task_dataset] + centred, dims="task")
    spread = pm.HalfNormal("task_spread", sigma=PRIORS["task_spread_sd"])
    offset = pm.ZeroSumNormal("mu_offset", sigma=1.0, dims="task")
    return pm.Deterministic("mu", spread * offset, dims="task")


def _noise(spec: ModelSpec, n_tasks: int, n_datasets: int, task_dataset) -> pt.TensorVariable:
    """Per-task noise sigma as a vector (shared noise is the constant 1, the scale unit)."""
    if spec.noise == "shared" or (spec.noise == "per-dataset" and n_datasets == 1):
        return pt.ones(n_tasks)
    log_dataset = _zero_sum_or_zero("log_sigma_dataset", PRIORS["log_sigma_dataset_sd"], n_datasets)
    sigma_dataset = pm.Deterministic("sigma_dataset", pt.exp(log_dataset), dims="dataset")
    if spec.noise == "per-dataset":
        return sigma_dataset[task_dataset]
    spread = pm.HalfNormal("sigma_spread", sigma=PRIORS["sigma_spread_sd"])
    offset = pm.Normal("sigma_offset", 0.0, 1.0, dims="task")
    return pm.Deterministic(
        "sigma", pt.exp(log_dataset[task_dataset] + spread * offset), dims="task"
    )


def _position(spec: ModelSpec, n_datasets: int):
    if spec.position == "none":
        return 0.0
    bias = pm.Normal("position_bias", 0.0, PRIORS["position_sd"])
    if spec.position == "global" or n_datasets == 1:
        return bias
    spread = pm.HalfNormal("position_spread", sigma=PRIORS["position_spread_sd"])
    offset = pm.Normal("position_offset", 0.0, 1.0, dims="dataset")
    return pm.Deterministic("position_bias_dataset", bias + spread * offset, dims="dataset")


def position_by_dataset(spec: ModelSpec, n_datasets: int) -> bool:
    return spec.position == "per-dataset" and n_datasets > 1


def build_model(spec: ModelSpec, data: ChoiceData) -> pm.Model:
    """The PyMC model of `spec` on `data`, with coords `task`, `dataset` and `cell`."""
    cells = data.cells
    n = cells["n"].to_numpy(np.int64)
    k = cells["k"].to_numpy(np.int64)
    n_datasets = len(data.datasets)
    coords = {
        "task": data.tasks["task_id"].to_numpy(),
        "dataset": data.datasets,
        "cell": np.arange(len(cells)),
    }
    with pm.Model(coords=coords) as model:
        task_dataset = pm.Data("task_dataset_idx", data.task_dataset_idx, dims="task")
        a_idx = pm.Data("task_a_idx", cells["a_idx"].to_numpy(np.int64), dims="cell")
        b_idx = pm.Data("task_b_idx", cells["b_idx"].to_numpy(np.int64), dims="cell")
        n_data = pm.Data("n_trials", n, dims="cell")
        log_coefficient = binomial_log_coefficient(n, k)

        mu = _utility(spec, data, task_dataset)
        sigma = _noise(spec, len(data.tasks), n_datasets, task_dataset)
        position = _position(spec, n_datasets)
        z = first_choice_z(
            mu, sigma, position, a_idx, b_idx, task_dataset, position_by_dataset(spec, n_datasets)
        )
        pm.CustomDist(
            "first_chosen",
            z,
            n_data,
            log_coefficient,
            logp=_choice_logp(spec.link),
            random=_choice_random(spec.link),
            observed=k,
            dims="cell",
        )
    return model
