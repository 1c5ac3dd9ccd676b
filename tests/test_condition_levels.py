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


@pytest.mark.parametrize("reference_sd, shift_sd, n_shifted", [(5.0, 1.0, 12), (0.3, 2.0, 3)])
def test_split_average_maps_the_average_and_free_shifts_to_the_stated_prior(
    reference_sd, shift_sd, n_shifted
):
    average, free = pt.dvector("average"), pt.dmatrix("free")
    reference, shifts = split_average(average, free, reference_sd, shift_sd)
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
def condition_model():
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
    return data, build_model(bp.resolve_spec("conditions"), data)


def test_condition_prior_is_reference_plus_independent_shifts(condition_model):
    data, model = condition_model
    assert {"dataset_mean_average", "mu_offset_average"} <= {v.name for v in model.free_RVs}
    prior = pm.sample_prior_predictive(draws=6000, model=model, random_seed=5)["prior"]
    means = prior["dataset_mean"].values.reshape(-1, 3)
    shifts = prior["condition_shift"].values.reshape(-1, 3, 3)
    # ZeroSumNormal over 3 datasets: variance sd^2 (1 - 1/3); the shifts' spread ~ HalfNormal(1).
    np.testing.assert_allclose(means.var(axis=0).mean(), 25 * 2 / 3, rtol=0.05)
    np.testing.assert_allclose(shifts.var(axis=0).mean(), 2 / 3, rtol=0.05)
    assert abs(np.corrcoef(means[:, 0], shifts[:, 0, 0])[0, 1]) < 0.05
    assert abs(np.corrcoef(shifts[:, 0, 0], shifts[:, 1, 0])[0, 1]) < 0.05
    # Task deviations: each condition's Normal(0, condition_task_spread) given the zero sums,
    # independent of the reference's deviations and of the other conditions'.
    dataset = data.task_dataset_idx
    mu = prior["mu"].values.reshape(-1, 30)
    by_condition = prior["mu_condition"].values.reshape(-1, 4, 30)
    deviation = by_condition[:, 1:] - by_condition[:, :1] - shifts[:, :, dataset]
    reference = mu - means[:, dataset]
    spread = prior["condition_task_spread"].values.ravel()
    within = 1 - 1 / np.bincount(dataset)[dataset]  # zero sums within each dataset
    np.testing.assert_allclose(
        (deviation.var(axis=0) / within[None]).mean(), np.mean(spread**2), rtol=0.05
    )
    assert abs(np.corrcoef(deviation[:, 0, 0], deviation[:, 1, 0])[0, 1]) < 0.05
    assert abs(np.corrcoef(reference[:, 0], deviation[:, 0, 0])[0, 1]) < 0.05
