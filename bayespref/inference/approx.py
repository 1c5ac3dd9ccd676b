"""A Laplace approximation of the posterior, for data too large for NUTS on the machine at hand.

1. The utility spread (`dataset_spread`, or `task_spread` without a hierarchy) is set by empirical
   Bayes: the joint posterior of a centred hierarchy has no mode (its density grows without bound
   as a spread and its tasks' deviations shrink to zero together), so the spread is estimated
   from its approximate marginal likelihood instead. A first mode with a weak spread gives each
   task's deviation from its dataset mean; with each deviation's variance from the Fisher
   information of the task's comparisons (information.py; beta-binomial cells carry less than
   their n trials would), deviation_i ~ N(0, spread^2 + variance_i), and the
   spread's marginal posterior is maximised (with its prior) in one dimension per dataset.
2. With the spread fixed there, the log posterior of every other parameter is maximised over the
   sampler's unconstrained coordinates (L-BFGS with JAX gradients); its exact Hessian at the mode,
   computed in blocks of Hessian-vector products, gives the Gaussian N(mode, H^-1), and its draws
   are mapped back to the model's variables. Spread draws come from the 1-D Laplace of step 1.

Ignored: the spread's uncertainty in the intervals (small at tens of tasks per dataset) and
non-Gaussian tails. Chosen over ADVI (mean-field drops the correlations of utilities that share
comparisons) and Pathfinder (not in this stack); coverage: benchmarks/run.py. Labelled approximate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import xarray as xr

from bayespref.inference.information import near_certain_share, task_information
from bayespref.inference.mode_finding import (
    GRADIENT_TOLERANCE,
    dense_hessian,
    find_mode,
    flat_objective,
    gaussian_draws,
    precision_factor,
)
from bayespref.inference.variables import model_variables
from bayespref.model.conditions import without_joint_mode
from bayespref.model.repeats import BETA_BINOMIAL
from bayespref.model.spec import ModelSpec
from bayespref.posterior.diagnostics import Diagnostics

# Above this share of trials predicted beyond 5% / 95% at the mode the likelihood is far from
# Gaussian and the intervals too narrow (benchmarks/approx_coverage.py, 500 tasks, 94% intervals
# of mu, approx / NUTS coverage): binomial cells, share 0.13-0.41: 0.91-0.92 / 0.92-0.93, 0.62:
# 0.87 / 0.93, 0.79: 0.57 / 0.93; beta-binomial cells on the realistic preset (pair effects in
# each pair's noise units), share 0.13-0.48: 0.88-0.92 / 0.92-0.94 (README, results/*.csv).
NEAR_CERTAIN_LIMIT = 0.5


def unsupported(spec: ModelSpec) -> str | None:
    """Why the approximation refuses `spec`, or None. At the joint mode pair effects take up each
    pair's choices and the utilities shrink, with few trials near certain, so the limit above
    misses it (approx_coverage.py, the preset before 2026-12-01: coverage 22-58%, NUTS 92-95%).
    Beta-binomial cells integrate those effects out and pass where the limit does (numbers
    above). With per-task terms on them (ad hoc, the refusal lifted, that preset at task sd 3.5
    and 7): per-task noise drifts; a concentration per task covered as one per dataset does
    (0.93 / 0.84 against NUTS's 0.93 / 0.93), but the preset's does not vary by task, so what
    it adds is unchecked."""
    if reason := without_joint_mode(spec):
        return f"{reason}; use NUTS"
    if spec.overdispersion == "none" or (
        spec.overdispersion == "beta-binomial" and spec.noise != "per-task"
    ):
        return None
    found = (
        "per-task noise on beta-binomial cells: at the mode its scale drifts (the realistic preset "
        "before 2026-12-01, task sd 3.5: means of mu stretched 1.3x past truth, sds 1.4x NUTS's)"
    )
    if spec.overdispersion == "beta-binomial-by-task":
        found = (
            "a concentration per task, checked only on data where it does not vary by task; "
            "model 'beta-binomial' (one per dataset) is supported"
        )
    if spec.overdispersion not in BETA_BINOMIAL:
        found = (
            f"pair effects (overdispersion = '{spec.overdispersion}'): at the mode they take up "
            "each pair's choices and the utilities shrink, true utilities covered 22-58%"
        )
    return f"model '{spec.name}' has {found} (benchmarks/approx_coverage.py); use NUTS"


@dataclass(frozen=True)
class LaplaceInfo:
    """What the approximation did: written to diagnostics.json."""

    n_parameters: int
    optimizer_iterations: int
    optimizer_converged: bool
    optimizer_message: str
    max_abs_gradient: float
    log_posterior_at_mode: float
    seconds_optimizing: float
    seconds_hessian: float
    log_spread: list[float]
    log_spread_sd: list[float]
    near_certain_share: float

    def diagnostics(self) -> Diagnostics:
        reasons = []
        if self.near_certain_share > NEAR_CERTAIN_LIMIT:
            reasons.append(
                f"{self.near_certain_share:.0%} of trials are predicted beyond 5% / 95% at the "
                "mode: choices this deterministic make the Laplace intervals too narrow; use NUTS "
                "(benchmarks/approx_coverage.py: at 57-79% its 94% intervals covered 57-87% of "
                "true utilities, NUTS's 93-95%)"
            )
        if not self.optimizer_converged:
            reasons.append(f"the optimizer did not converge: {self.optimizer_message}")
        if self.max_abs_gradient > 100 * GRADIENT_TOLERANCE:
            reasons.append(f"gradient at the mode is {self.max_abs_gradient:.2g}, not near 0")
        measures = {
            "method": "laplace",
            "n_parameters": self.n_parameters,
            "optimizer_iterations": self.optimizer_iterations,
            "optimizer_message": self.optimizer_message,
            "max_abs_gradient": self.max_abs_gradient,
            "log_posterior_at_mode": self.log_posterior_at_mode,
            "seconds_optimizing": round(self.seconds_optimizing, 2),
            "seconds_hessian": round(self.seconds_hessian, 2),
            "log_spread_mode": self.log_spread,
            "log_spread_sd": self.log_spread_sd,
            "near_certain_share": self.near_certain_share,
        }
        return Diagnostics(passed=not reasons, reasons=reasons, measures=measures, approximate=True)


def _choice_terms(model, x: np.ndarray, unravel, task_dataset: np.ndarray):
    """mu, per-task sigma, position bias and its scope, and per-task Beta concentration (None
    for binomial cells), at one point."""
    from bayespref.posterior import draws as post

    at = _at_point(model, x, unravel)
    position, scope = post.position(at)
    concentration = post.task_concentration(at, task_dataset)
    return (
        post.draws(at, "mu")[:, 0],
        post.task_sigma(at, task_dataset)[:, 0],
        position[..., 0],
        scope,
        None if concentration is None else concentration[:, 0],
    )


def spread_marginal(
    deviation: np.ndarray, variance: np.ndarray, prior_sd: float
) -> tuple[float, float]:
    """Mode and sd of log(spread) under deviation_i ~ N(0, spread^2 + variance_i) and a
    half-normal prior on the spread (in log coordinates, so with the log Jacobian)."""
    from scipy.optimize import minimize_scalar

    def negative_log_posterior(log_spread: float) -> float:
        total = np.exp(2 * log_spread) + variance
        likelihood = -0.5 * np.sum(np.log(total) + deviation**2 / total)
        prior = -0.5 * np.exp(2 * log_spread) / prior_sd**2 + log_spread
        return -(likelihood + prior)

    found = minimize_scalar(
        negative_log_posterior, bounds=(-12.0, np.log(10 * prior_sd)), method="bounded"
    )
    step = 1e-3
    curvature = (
        negative_log_posterior(found.x + step)
        - 2 * found.fun
        + negative_log_posterior(found.x - step)
    ) / step**2
    return float(found.x), float(1 / np.sqrt(max(curvature, 1e-12)))


def _at_point(model, x: np.ndarray, unravel) -> xr.Dataset:
    """The model's variables at one unconstrained point, as a one-draw posterior."""
    from pymc.backends.arviz import coords_and_dims_for_inferencedata

    coords, dims = coords_and_dims_for_inferencedata(model)
    variables = model_variables(model, x[None], unravel)
    return xr.Dataset(
        {
            name: (("chain", "draw", *dims.get(name, [])), values)
            for name, values in variables.items()
        },
        coords={name: coords[name] for name in coords},
    )


@dataclass(frozen=True)
class SpreadSetup:
    """The hierarchy's utility spread, fixed by empirical Bayes (module docstring)."""

    name: str  # dataset_spread or task_spread
    groups: np.ndarray  # each task's group: its dataset, or 0 for all
    shape: tuple[int, ...]  # (n_datasets,) or () for the single task_spread
    prior_sd: float
    link: str


def _empirical_spread(
    fixed_model, objective, setup: SpreadSetup, cells, task_dataset
) -> tuple[np.ndarray, np.ndarray, object]:
    """log spread per group (mode, sd), and the weak-spread mode to start the next fit from."""
    n_groups = setup.groups.max() + 1
    weak_spread = np.full(setup.shape, setup.prior_sd)
    fixed_model[setup.name].set_value(weak_spread)  # for the variables read at the mode
    # Only deviations and a start point are needed from this mode: a looser tolerance will do.
    weak = find_mode(objective, weak_spread, objective.start, 10 * GRADIENT_TOLERANCE)
    mu, sigma, position, scope, concentration = _choice_terms(
        fixed_model, weak.x, objective.unravel, task_dataset
    )
    information = task_information(
        mu, sigma, position, scope, cells, task_dataset, setup.link, concentration
    )
    log_spread, log_spread_sd = np.zeros(n_groups), np.zeros(n_groups)
    for group in range(n_groups):
        members = (setup.groups == group) & (information > 0)
        deviation = mu[members] - mu[setup.groups == group].mean()
        log_spread[group], log_spread_sd[group] = spread_marginal(
            deviation, 1 / information[members], setup.prior_sd
        )
    return log_spread, log_spread_sd, weak


@dataclass(frozen=True)
class LaplaceMode:
    """The mode of the posterior with the spread fixed by empirical Bayes, the lower Cholesky
    factor of the Hessian there, and the 1-D Laplace of each group's log spread."""

    fixed_model: object  # the model with the spread a constant
    mode: np.ndarray  # flat, in the fixed model's unconstrained coordinates
    factor: np.ndarray
    unravel: object  # flat vector -> list of the fixed model's value variables
    log_spread: np.ndarray
    log_spread_sd: np.ndarray
    info: LaplaceInfo


def laplace_mode(model, setup: SpreadSetup, cells, task_dataset: np.ndarray) -> LaplaceMode:
    """Steps 1 and 2 of the module docstring: the Gaussian's centre and curvature."""
    import pymc as pm

    started = time.perf_counter()
    fixed = pm.do(model, {setup.name: np.ones(setup.shape)})
    objective = flat_objective(fixed, fixed[setup.name])  # the spread an argument: one compile
    log_spread, log_spread_sd, weak = _empirical_spread(
        fixed, objective, setup, cells, task_dataset
    )
    spread = np.exp(log_spread).reshape(setup.shape)
    fixed[setup.name].set_value(spread)
    result = find_mode(objective, spread, weak.x)
    unravel = objective.unravel
    near_certain = near_certain_share(
        *_choice_terms(fixed, result.x, unravel, task_dataset)[:4], cells, task_dataset, setup.link
    )
    optimized = time.perf_counter()
    factor = precision_factor(dense_hessian(objective, spread, result.x))
    info = LaplaceInfo(
        n_parameters=result.x.size,
        optimizer_iterations=int(weak.nit + result.nit),
        optimizer_converged=bool(result.success),
        optimizer_message=str(result.message),
        max_abs_gradient=float(np.max(np.abs(result.jac))),
        log_posterior_at_mode=-float(result.fun),
        seconds_optimizing=optimized - started,
        seconds_hessian=time.perf_counter() - optimized,
        log_spread=[float(v) for v in log_spread],
        log_spread_sd=[float(v) for v in log_spread_sd],
        near_certain_share=near_certain,
    )
    return LaplaceMode(fixed, result.x, factor, unravel, log_spread, log_spread_sd, info)


def laplace_posterior(
    model, setup: SpreadSetup, cells, task_dataset: np.ndarray, draws: int, seed: int
) -> tuple[xr.DataTree, LaplaceInfo]:
    """Draws from the approximate posterior of `model` as a DataTree with one chain (plus the
    observed and constant data, as the NUTS path writes)."""
    from arviz_base import from_dict
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        find_constants,
        find_observations,
    )

    found = laplace_mode(model, setup, cells, task_dataset)
    rng = np.random.default_rng(seed)
    unconstrained = gaussian_draws(found.mode, found.factor, draws, rng)
    variables = model_variables(found.fixed_model, unconstrained, found.unravel)
    noise = rng.standard_normal((draws, found.log_spread.size))
    spread_draws = np.exp(found.log_spread + found.log_spread_sd * noise)
    variables[setup.name] = spread_draws.reshape(1, draws, *setup.shape)
    coords, dims = coords_and_dims_for_inferencedata(model)
    groups = {"posterior": variables}
    for name, group in (("observed_data", find_observations), ("constant_data", find_constants)):
        found_group = group(model)
        if found_group:
            groups[name] = found_group
    idata = from_dict(data=groups, coords=coords, dims=dims, sample_dims=["chain", "draw"])
    return idata, found.info
