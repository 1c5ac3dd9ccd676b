from __future__ import annotations

import jax
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.sampling.jax import get_jaxified_logp
from scipy.special import erfcx, log_ndtr

import bayespref as bp
from bayespref.model.builder import build_model
from bayespref.model.likelihood import (
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


@pytest.fixture(scope="module")
def small_model():
    simulation = bp.simulate(n_tasks=30, n_datasets=3, n_comparisons=400, position_bias=0.3, seed=2)
    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    return build_model(bp.resolve_spec("position-by-dataset"), data)  # binomial cells: the kernel


def _random_point(model, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        name: value + rng.normal(scale=0.5, size=np.shape(value))
        for name, value in model.initial_point().items()
    }


def test_the_jax_kernel_and_the_written_out_graph_give_the_same_posterior_density(small_model):
    """JAX (NumPyro) runs the fused kernel, C (PyMC's sampler) the written-out graph."""
    point = _random_point(small_model, seed=3)
    values = [point[v.name] for v in small_model.value_vars]
    c_logp = small_model.compile_logp()(point)
    c_gradient = small_model.compile_dlogp()(point)
    jax_logp = get_jaxified_logp(small_model)
    value, gradient = jax.value_and_grad(jax_logp)(values)

    assert float(value) == pytest.approx(float(c_logp), rel=1e-12)
    flat = np.concatenate([np.ravel(g) for g in gradient])
    np.testing.assert_allclose(flat, c_gradient, rtol=1e-9)


def test_only_the_jax_backend_keeps_the_fused_likelihood(small_model):
    from pymc.pytensorf import compile as compile_function
    from pymc.sampling.jax import _replace_shared_variables
    from pytensor.compile import mode
    from pytensor.graph import FunctionGraph

    def kept(apply_nodes) -> bool:
        return any(isinstance(node.op, ProbitBinomialLogp) for node in apply_nodes)

    logp = small_model.logp()
    c_function = compile_function(small_model.value_vars, logp)
    assert not kept(c_function.maker.fgraph.apply_nodes)
    graph = FunctionGraph(small_model.value_vars, _replace_shared_variables([logp]), clone=True)
    mode.JAX.optimizer.rewrite(graph)
    assert kept(graph.apply_nodes)
