from __future__ import annotations

import jax
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.sampling.jax import get_jaxified_logp
from pytensor.link.jax.dispatch import jax_funcify
from scipy.special import erfcx, gammaln, log_ndtr, ndtr
from scipy.stats import betabinom

import bayespref as bp
from bayespref.model.builder import build_model
from bayespref.model.likelihood import (
    BetaBinomialLogp,
    ProbitBinomialLogp,
    log_phi,
    probit_binomial_cells,
    probit_binomial_slope,
)

# Both sides of every switch, and values far beyond them.
Z = np.concatenate(
    [np.linspace(-60, 60, 4801), [-37.0001, -36.9999, 36.9999, 37.0001, -200.0, 200.0, -1e6, 1e6]]
)


def test_log_phi_is_accurate_with_finite_gradients_everywhere():
    z = pt.dvector("z")
    value, gradient = pytensor.function([z], [log_phi(z), pytensor.grad(log_phi(z).sum(), z)])(
        np.concatenate([np.linspace(-60, 8, 20001), [-1e6, -1e3, 1e3, 1e6]])
    )
    grid = np.linspace(-60, 8, 20001)
    np.testing.assert_allclose(value[:20001], log_ndtr(grid), rtol=1e-7, atol=1e-12)
    assert np.all(np.isfinite(gradient))
    assert np.isfinite(value).all() and value[-4] == pytest.approx(-5e11, rel=1e-6)


def _mills(z):
    """m(z) = phi(z) / Phi(z), through erfcx: accurate for any z."""
    return np.sqrt(2 / np.pi) / erfcx(-z / np.sqrt(2))


def test_jax_kernel_gives_the_likelihood_and_two_derivatives_to_float64_precision():
    rng = np.random.default_rng(0)
    n = rng.integers(1, 6, size=Z.size).astype(float)
    k = np.floor(rng.uniform(0, n + 1))
    value = probit_binomial_cells(Z, k, n)
    slope = jax.vmap(jax.grad(probit_binomial_cells))(Z, k, n)
    curvature = jax.vmap(jax.grad(probit_binomial_slope))(Z, k, n)

    # Beyond |z| = 37 the kernel takes log Phi(|z|), which is above -1e-299, as log Phi(37);
    # below 1e-300 XLA flushes to zero.
    log_likelihood = k * log_ndtr(Z) + (n - k) * log_ndtr(-Z)
    np.testing.assert_allclose(value, log_likelihood, rtol=1e-12, atol=1e-298)
    score = k * _mills(Z) - (n - k) * _mills(-Z)
    np.testing.assert_allclose(slope, score, rtol=1e-11, atol=1e-300)
    # d m(z)/dz = -m(z) (z + m(z)), which cancels too much to be a reference at |z| = 1e6;
    # there it is -(1 - 1/z^2) per trial of the improbable outcome, to 1e-24.
    derivative = -k * _mills(Z) * (Z + _mills(Z)) - (n - k) * _mills(-Z) * (_mills(-Z) - Z)
    far = np.abs(Z) == 1e6
    improbable = np.where(Z > 0, n - k, k)
    derivative[far] = -improbable[far] * (1 - 1 / Z[far] ** 2)
    np.testing.assert_allclose(curvature, derivative, rtol=1e-8, atol=1e-300)


def test_jax_kernel_stays_finite_and_accurate_in_float32():
    z = np.concatenate([np.linspace(-30, 30, 601), [-1e3, 1e3]]).astype(np.float32)
    ones = np.ones_like(z)
    value = probit_binomial_cells(z, ones, ones)
    slope = jax.vmap(jax.grad(probit_binomial_cells))(z, ones, ones)
    curvature = jax.vmap(jax.grad(probit_binomial_slope))(z, ones, ones)

    assert value.dtype == np.float32
    z64 = z.astype(float)
    # Beyond the float32 switch (|z| = 9) log Phi(|z|), above -1.2e-19, is taken as log Phi(9).
    np.testing.assert_allclose(value, log_ndtr(z64), rtol=2e-5, atol=2e-19)
    np.testing.assert_allclose(slope, _mills(z64), rtol=2e-5, atol=1e-30)
    assert np.isfinite(curvature).all()


FUSED = {"position-by-dataset": ProbitBinomialLogp, "beta-binomial": BetaBinomialLogp}


@pytest.fixture(scope="module", params=list(FUSED))
def small_model(request):
    """A model with each fused likelihood: binomial and beta-binomial cells (repeats of 2)."""
    simulation = bp.simulate(
        n_tasks=30, n_datasets=3, n_comparisons=400, position_bias=0.3, repeats=2, seed=2
    )
    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    return build_model(bp.resolve_spec(request.param), data), FUSED[request.param]


def _random_point(model, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: value + rng.normal(scale=0.5, size=np.shape(value))
        for name, value in model.initial_point().items()
    }


def test_the_jax_kernel_and_the_written_out_graph_give_the_same_posterior_density(small_model):
    """JAX (NumPyro) runs the fused kernel, C (PyMC's sampler) the written-out graph."""
    small_model, _ = small_model
    point = _random_point(small_model, seed=3)
    values = [point[v.name] for v in small_model.value_vars]
    c_logp = small_model.compile_logp()(point)
    c_gradient = small_model.compile_dlogp()(point)
    jax_logp = get_jaxified_logp(small_model)
    value, gradient = jax.value_and_grad(jax_logp)(values)

    # The point has cells at z = -10.3, where the written-out log Phi is a series good to about
    # 1e-7 per cell and the kernels' erfc to 1e-15.
    assert float(value) == pytest.approx(float(c_logp), rel=1e-8)
    flat = np.concatenate([np.ravel(g) for g in gradient])
    np.testing.assert_allclose(flat, c_gradient, rtol=1e-7, atol=2e-6)


def _beta_binomial_cells(seed: int, size: int, z_scale: float):
    rng = np.random.default_rng(seed)
    n = rng.integers(0, 13, size).astype(float)
    k = np.floor(rng.uniform(0, n + 1))
    z = rng.normal(0, z_scale, size)
    kappa = np.exp(rng.uniform(np.log(0.01), np.log(1e4), size))
    return z, kappa, k, n


def _written_out(op: BetaBinomialLogp):
    """The Op's written-out graph on the C backend: value, gradient and second derivatives."""
    z, kappa, k, n = pt.dvectors("z", "kappa", "k", "n")
    total = op.build_inner_graph(z, kappa, k, n)[0]
    dz, dkappa = pytensor.grad(total.sum(), [z, kappa])
    second = [pytensor.grad(dz.sum(), [z, kappa])[0], pytensor.grad(dkappa.sum(), kappa)]
    return pytensor.function([z, kappa, k, n], [total, dz, dkappa, *second])


def test_beta_binomial_kernel_matches_scipy_and_its_written_out_graph():
    op = BetaBinomialLogp(max_count=12)
    kernel = jax_funcify(op)
    z, kappa, k, n = _beta_binomial_cells(seed=0, size=2000, z_scale=3.0)
    value = kernel(z, kappa, k, n)
    p = ndtr(z)
    coefficient = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    expected = betabinom.logpmf(k, n, kappa * p, kappa * ndtr(-z)) - coefficient
    np.testing.assert_allclose(value, expected, rtol=1e-7, atol=1e-9)

    # Into the far tails, against the written-out graph, derivatives to the second order; below
    # z = -10 the graph's log Phi is a series good to about 1e-7, the kernel's erfc to 1e-15.
    z, kappa, k, n = _beta_binomial_cells(seed=1, size=2000, z_scale=12.0)
    written = _written_out(op)(z, kappa, k, n)
    gradient = jax.vmap(jax.grad(kernel, argnums=(0, 1)))(z, kappa, k, n)
    hessian = jax.vmap(jax.hessian(kernel, argnums=(0, 1)))(z, kappa, k, n)
    np.testing.assert_allclose(kernel(z, kappa, k, n), written[0], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gradient[0], written[1], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(gradient[1], written[2], rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(hessian[0][0], written[3], rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(hessian[1][1], written[4], rtol=1e-6, atol=1e-12)


def test_beta_binomial_kernel_stays_finite_in_float32():
    op = BetaBinomialLogp(max_count=12)
    kernel = jax_funcify(op)
    cells = _beta_binomial_cells(seed=2, size=2000, z_scale=12.0)
    z, kappa, k, n = (np.float32(column) for column in cells)
    value = kernel(z, kappa, k, n)
    gradient = jax.vmap(jax.grad(kernel, argnums=(0, 1)))(z, kappa, k, n)
    assert value.dtype == np.float32
    assert np.isfinite(value).all() and all(np.isfinite(g).all() for g in gradient)
    moderate = np.abs(cells[0]) < 8
    reference = np.asarray(kernel(*cells))
    np.testing.assert_allclose(value[moderate], reference[moderate], rtol=1e-4, atol=1e-4)


def test_only_the_jax_backend_keeps_the_fused_likelihood(small_model):
    from pymc.pytensorf import compile as compile_function
    from pymc.sampling.jax import _replace_shared_variables
    from pytensor.compile import mode
    from pytensor.graph import FunctionGraph

    small_model, fused = small_model

    def kept(apply_nodes) -> bool:
        return any(isinstance(node.op, fused) for node in apply_nodes)

    logp = small_model.logp()
    c_function = compile_function(small_model.value_vars, logp)
    assert not kept(c_function.maker.fgraph.apply_nodes)
    graph = FunctionGraph(small_model.value_vars, _replace_shared_variables([logp]), clone=True)
    mode.JAX.optimizer.rewrite(graph)
    assert kept(graph.apply_nodes)
