"""Condition shifts sampled around the average over all conditions: the same prior as the
reference's utilities plus independent shifts."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

import bayespref as bp
from bayespref.model.builder import build_model
from bayespref.model.conditions import average_sd, split_average
from bayespref.model.structure import PRIORS


@pytest.mark.parametrize(
    "reference_sd, shift_sd, n_shifted", [(5.0, 1.0, 12), (0.3, 2.0, 3), (1.0, 1.0, 4)]
)
def test_split_average_maps_the_average_and_free_shifts_to_the_stated_prior(
    reference_sd, shift_sd, n_shifted
):
    average, free = pt.dvector("average"), pt.dmatrix("free")
    reference, shifts = split_average(average, free, reference_sd, shift_sd, n_shifted)
    mapping = pytensor.function([average, free], [reference, shifts])
    # The map is linear: its matrix column by column from unit inputs.
    size = n_shifted + 1
    columns = []
    for j in range(size):
        unit = np.zeros(size)
        unit[j] = 1.0
        ref, shifted = mapping(unit[:1], unit[1:, None])
        columns.append(np.concatenate([ref, shifted[:, 0]]))
    matrix = np.array(columns).T
    sd = float(average_sd(reference_sd, shift_sd, n_shifted).eval())
    inputs = np.diag([sd**2] + [shift_sd**2] * n_shifted)
    expected = np.diag([reference_sd**2] + [shift_sd**2] * n_shifted)
    np.testing.assert_allclose(matrix @ inputs @ matrix.T, expected, atol=1e-9)
    # The first input is the average of the reference and the shifted conditions' levels.
    levels = np.vstack([matrix[:1], matrix[1:] + matrix[:1]])
    np.testing.assert_allclose(levels.mean(axis=0), np.eye(size)[0], atol=1e-9)


@pytest.fixture(scope="module")
def condition_prior():
    """Prior draws of `conditions` with the reference's and the shifts' scales alike (the
    defaults make the reference's far larger, where a wrong split would hardly show)."""
    simulation = bp.simulate(
        bp.SimulationConfig(
            n_tasks=30,
            n_datasets=3,
            n_comparisons=600,
            repeats=2,
            condition_shifts=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 0.5)),
            seed=1,
        )
    )
    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    alike = {
        "dataset_mean_sd": 1.0,
        "condition_dataset_spread_sd": 1.0,
        "dataset_spread_sd": 0.5,
        "condition_task_spread_sd": 0.5,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in alike.items():
            patch.setitem(PRIORS, key, value)
        model = build_model(bp.resolve_spec("conditions"), data)
    assert {"dataset_mean_average", "mu_offset_average"} <= {v.name for v in model.free_RVs}
    prior = pm.sample_prior_predictive(draws=8000, model=model, random_seed=5)["prior"]
    return data, {name: prior[name].values.reshape(8000, *prior[name].shape[2:]) for name in prior}


def _cross_correlation(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Correlations between the columns of x and those of y (draws in rows)."""
    x = (x - x.mean(axis=0)) / x.std(axis=0)
    y = (y - y.mean(axis=0)) / y.std(axis=0)
    return x.T @ y / len(x)


def test_condition_prior_is_reference_plus_independent_shifts(condition_prior):
    data, prior = condition_prior
    means, shifts = prior["dataset_mean"], prior["condition_shift"]  # (draw, 3), (draw, 3, 3)
    # ZeroSumNormal over 3 datasets: variance sd^2 (1 - 1/3), with sd 1 and HalfNormal(1).
    np.testing.assert_allclose(means.var(axis=0), 2 / 3, rtol=0.06)
    expected = np.mean(prior["condition_dataset_spread"] ** 2) * 2 / 3
    np.testing.assert_allclose(shifts.var(axis=0), expected, rtol=0.1)
    np.testing.assert_allclose(shifts.sum(axis=2), 0.0, atol=1e-8)
    assert np.abs(_cross_correlation(means, shifts.reshape(-1, 9))).max() < 0.05
    between = _cross_correlation(shifts[:, 0], shifts[:, 1:].reshape(-1, 6))
    assert np.abs(between).max() < 0.05
    # Task deviations: the reference's Normal(0, its dataset's spread), each shifted
    # condition's Normal(0, condition_task_spread), zero sums within each dataset, independent.
    dataset = data.task_dataset_idx
    within = 1 - 1 / np.bincount(dataset)[dataset]
    reference = prior["mu"] - means[:, dataset]
    deviation = prior["mu_condition"][:, 1:] - prior["mu_condition"][:, :1] - shifts[:, :, dataset]
    spread = prior["dataset_spread"][:, dataset]
    np.testing.assert_allclose(
        reference.var(axis=0) / within, np.mean(spread**2, axis=0), rtol=0.12
    )
    expected = np.mean(prior["condition_task_spread"] ** 2)
    np.testing.assert_allclose((deviation.var(axis=0) / within).mean(), expected, rtol=0.04)
    # Given their spread too: Normal(0, spread), however partially centred the sampler's offsets.
    scaled = deviation / prior["condition_task_spread"][:, None, None]
    np.testing.assert_allclose((scaled.var(axis=0) / within).mean(), 1.0, rtol=0.04)
    for d in range(3):
        np.testing.assert_allclose(deviation[:, :, dataset == d].sum(axis=2), 0.0, atol=1e-8)
    tasks = np.flatnonzero(dataset == 0)[:4]
    assert (
        np.abs(
            _cross_correlation(reference[:, tasks], deviation[:, :, tasks].reshape(-1, 12))
        ).max()
        < 0.05
    )
    assert np.abs(_cross_correlation(deviation[:, 0, tasks], deviation[:, 1, tasks])).max() < 0.05


def test_condition_cells_read_each_condition_utilities_and_their_datasets_terms():
    """The likelihood of `conditions` (beta-binomial cells, per-dataset noise, position and
    concentration, read per ordered pair of datasets) against scipy from the model's own
    variables, as predictions compute it."""
    from pymc.sampling.jax import get_jaxified_logp
    from scipy.special import ndtr
    from scipy.stats import betabinom

    simulation = bp.simulate(
        bp.SimulationConfig(
            n_tasks=12,
            n_datasets=3,
            n_comparisons=150,
            repeats=3,
            condition_shifts=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0)),
            seed=3,
        )
    )
    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    model = build_model(bp.resolve_spec("conditions"), data)
    rng = np.random.default_rng(4)
    point = {n: v + rng.normal(0, 0.5, np.shape(v)) for n, v in model.initial_point().items()}
    names = ["mu_condition", "sigma_dataset", "position_bias_dataset", "concentration_dataset"]
    outputs = model.replace_rvs_by_values([model[name] for name in names])
    values = pytensor.function(model.value_vars, outputs, on_unused_input="ignore")
    utility, sigma, bias, kappa = values(*(point[v.name] for v in model.value_vars))
    cells, td = data.cells, data.task_dataset_idx
    a, b, c, n, k = (cells[x].to_numpy() for x in ("a_idx", "b_idx", "condition_idx", "n", "k"))
    assert len(np.unique(c)) == 3 and len(np.unique(td[a] * 3 + td[b])) == 9
    z = utility[c, a] - utility[c, b] + (bias[td[a]] + bias[td[b]]) / 2
    z /= np.hypot(sigma[td[a]], sigma[td[b]])
    concentration, p = np.sqrt(kappa[td[a]] * kappa[td[b]]), ndtr(z)
    expected = betabinom.logpmf(k, n, concentration * p, concentration * (1 - p))
    observed = model.compile_logp(vars=[model["first_chosen"]], sum=False)(point)[0]
    np.testing.assert_allclose(observed, expected, rtol=1e-8, atol=1e-10)
    # The JAX density NUTS samples is the same.
    jax_logp = get_jaxified_logp(model)([point[v.name] for v in model.value_vars])
    assert float(jax_logp) == pytest.approx(float(model.compile_logp()(point)), rel=1e-10)
