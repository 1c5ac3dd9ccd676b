"""A PyMC model's posterior mode and curvature in the sampler's unconstrained coordinates: the
negative log posterior of one flat float64 vector, with a fixed parameter as its argument (so one
conversion to JAX and one compilation serve every value given to it), its minimum by L-BFGS-B,
the dense Hessian there, and Gaussian draws around it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bayespref.errors import ApproximationError

# Hessian columns computed per vectorised pass: bounds memory at about 8 x block x cells floats.
HESSIAN_BLOCK = 32
GRADIENT_TOLERANCE = 1e-4


@dataclass(frozen=True)
class FlatObjective:
    """-log p(x, fixed) and its gradient in x, jitted once; the model's start point, flat; and
    the map from a flat vector to the model's value variables."""

    potential: Callable
    value_and_grad: Callable
    start: np.ndarray
    unravel: Callable


def flat_objective(model, fixed) -> FlatObjective:
    """The negative log posterior of `model` at a flat vector of its value variables and a value
    of `fixed`, one of its shared variables (as `pm.do` leaves an intervened variable), which
    the graph then reads as an input instead of a constant folded in."""
    import jax
    import pytensor.tensor as pt
    from jax.flatten_util import ravel_pytree
    from pymc.sampling.jax import get_jaxified_graph
    from pytensor.graph import clone_replace

    value = pt.tensor("fixed_value", shape=fixed.type.shape, dtype=fixed.dtype)
    log_posterior = clone_replace(model.logp(), {fixed: value})
    function = get_jaxified_graph(inputs=[*model.value_vars, value], outputs=[-log_posterior])
    start = model.initial_point()
    initial = [np.asarray(start[v.name], dtype=np.float64) for v in model.value_vars]
    flat, unravel = ravel_pytree(initial)

    def potential(x, fixed_value):
        return function(*unravel(x), fixed_value)[0]

    value_and_grad = jax.jit(jax.value_and_grad(potential))
    return FlatObjective(potential, value_and_grad, np.asarray(flat), unravel)


def find_mode(
    objective: FlatObjective,
    fixed_value: np.ndarray,
    start: np.ndarray,
    tolerance: float = GRADIENT_TOLERANCE,
):
    """scipy's L-BFGS-B result for the minimum of the objective at `fixed_value`."""
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    def scipy_objective(x):
        value, grad = objective.value_and_grad(x, fixed_value)
        return float(value), np.asarray(grad, dtype=np.float64)

    # L-BFGS-B's small BLAS calls, threaded, waited for cores held by XLA or other jobs: 288 s of
    # a 504 s warm start at 10,000 tasks beside another fit, against 8.6 s on quiet cores.
    options = {"maxiter": 50_000, "maxcor": 30, "gtol": tolerance, "ftol": 1e-14}
    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(scipy_objective, start, jac=True, method="L-BFGS-B", options=options)
    if not np.isfinite(result.fun):
        raise ApproximationError("the log posterior is not finite at the optimizer's end point")
    return result


def dense_hessian(objective: FlatObjective, fixed_value: np.ndarray, mode: np.ndarray):
    """The dense Hessian in x at the mode from blocks of Hessian-vector products (forward over
    reverse)."""
    import jax
    import jax.numpy as jnp

    gradient = jax.grad(objective.potential)

    @jax.jit
    def columns(point, fixed, directions):
        def column(v):
            return jax.jvp(lambda x: gradient(x, fixed), (point,), (v,))[1]

        return jax.vmap(column)(directions)

    size = mode.size
    hessian = np.empty((size, size))
    point, fixed = jnp.asarray(mode), jnp.asarray(fixed_value)
    for start in range(0, size, HESSIAN_BLOCK):
        stop = min(start + HESSIAN_BLOCK, size)
        directions = np.zeros((HESSIAN_BLOCK, size))  # a fixed shape: one compilation
        directions[np.arange(stop - start), np.arange(start, stop)] = 1.0
        hessian[start:stop] = np.asarray(columns(point, fixed, directions))[: stop - start]
    return (hessian + hessian.T) / 2


def precision_factor(hessian: np.ndarray) -> np.ndarray:
    """The lower Cholesky factor of the precision `hessian` (overwritten)."""
    from scipy.linalg import LinAlgError, cholesky

    try:
        return cholesky(hessian, lower=True, overwrite_a=True)
    except LinAlgError as error:
        raise ApproximationError(
            "the Hessian at the mode is not positive definite: the posterior is not locally "
            "Gaussian there (a parameter is unidentified or at a boundary); use NUTS"
        ) from error


def gaussian_draws(mode: np.ndarray, factor: np.ndarray, draws: int, rng) -> np.ndarray:
    """Draws (draws, size) from N(mode, H^-1), given H's lower Cholesky `factor`."""
    from scipy.linalg import solve_triangular

    noise = rng.standard_normal((mode.size, draws))
    return (mode[:, None] + solve_triangular(factor.T, noise, lower=False)).T
