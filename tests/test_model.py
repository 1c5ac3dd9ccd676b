from __future__ import annotations

import itertools

import numpy as np
import pytensor
import pytest
from scipy.special import gammaln, log_ndtr

import bayespref as bp
from bayespref.model.builder import build_model
from bayespref.model.spec import OPTIONS, ModelSpec


def evaluate(model, names: list[str], point: dict) -> list[np.ndarray]:
    """Model variables at a point of the (unconstrained) value variables."""
    outputs = model.replace_rvs_by_values([model[name] for name in names])
    function = pytensor.function(model.value_vars, outputs, on_unused_input="ignore")
    return function(*[point[v.name] for v in model.value_vars])


@pytest.fixture(scope="module")
def tiny_data():
    simulation = bp.simulate(n_tasks=12, n_datasets=3, n_comparisons=60, repeats=2, seed=0)
    return simulation, bp.load_choice_data(simulation.comparisons, simulation.tasks)


@pytest.mark.parametrize(
    ("noise", "position", "hierarchy", "link"),
    [
        (noise, position, hierarchy, "probit" if hierarchy == "dataset" else "logit")
        for noise, position, hierarchy in itertools.product(
            OPTIONS["noise"], OPTIONS["position"], OPTIONS["hierarchy"]
        )
    ],
)
def test_every_spec_builds_with_named_coords_and_finite_logp(
    tiny_data, noise, position, hierarchy, link
):
    _, data = tiny_data
    parameterization = "non-centered" if noise == "shared" else "centered"
    spec = ModelSpec(
        noise=noise,
        position=position,
        hierarchy=hierarchy,
        link=link,
        parameterization=parameterization,
    )
    model = build_model(spec, data)
    assert list(model.coords["task"]) == data.tasks["task_id"].tolist()
    assert list(model.coords["dataset"]) == data.datasets
    names = set(model.named_vars)
    assert "mu" in names
    assert ("position_bias" in names) == (position != "none")
    assert ("position_bias_dataset" in names) == (position == "per-dataset")
    assert ("sigma" in names) == (noise == "per-task")
    assert ("sigma_dataset" in names) == (noise != "shared")
    assert ("dataset_mean" in names) == (hierarchy == "dataset")
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_likelihood_equals_direct_binomial_probit_computation(tiny_data):
    simulation, data = tiny_data
    spec = ModelSpec(noise="per-task", position="per-dataset")
    model = build_model(spec, data)
    point = model.initial_point()
    rng = np.random.default_rng(0)
    point = {name: value + rng.normal(0, 0.3, np.shape(value)) for name, value in point.items()}
    mu, sigma, bias = evaluate(model, ["mu", "sigma", "position_bias_dataset"], point)
    cells = data.cells
    a, b, n, k = (cells[c].to_numpy() for c in ("a_idx", "b_idx", "n", "k"))
    td = data.task_dataset_idx
    z = (mu[a] - mu[b] + (bias[td[a]] + bias[td[b]]) / 2) / np.hypot(sigma[a], sigma[b])
    log_coefficient = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    expected = log_coefficient + k * log_ndtr(z) + (n - k) * log_ndtr(-z)
    observed = model.compile_logp(vars=[model["first_chosen"]], sum=False)(point)[0]
    np.testing.assert_allclose(observed, expected, rtol=1e-9)


def test_jax_logp_matches_pytensor_logp(tiny_data):
    from pymc.sampling.jax import get_jaxified_logp

    _, data = tiny_data
    model = build_model(ModelSpec(noise="per-task", position="per-dataset"), data)
    point = model.initial_point()
    jax_logp = get_jaxified_logp(model)([point[v.name] for v in model.value_vars])
    assert float(jax_logp) == pytest.approx(float(model.compile_logp()(point)), rel=1e-10)


def test_dataset_means_are_exactly_the_mean_utility_of_their_tasks(tiny_data):
    _, data = tiny_data
    model = build_model(ModelSpec(), data)
    point = {
        n: v + np.random.default_rng(1).normal(size=np.shape(v))
        for n, v in model.initial_point().items()
    }
    mu, mean = evaluate(model, ["mu", "dataset_mean"], point)
    by_dataset = np.bincount(data.task_dataset_idx, mu) / np.bincount(data.task_dataset_idx)
    np.testing.assert_allclose(by_dataset, mean, atol=1e-12)
    assert abs(mean.sum()) < 1e-12
