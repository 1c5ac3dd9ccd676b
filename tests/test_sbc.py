from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

from bayespref.inference.settings import SamplerSettings
from bayespref.model.choice import first_choice_probability
from bayespref.model.spec import resolve_spec
from bayespref.workflows.sbc import (
    RANKED,
    design_effect,
    prior_draw,
    sbc_design,
    sbc_ranks,
    uniformity,
)


def test_small_sbc_ranks_are_not_far_from_uniform():
    ranks = sbc_ranks("hierarchical", replications=8, n_tasks=10, n_comparisons=90, seed=1)
    assert set(ranks["parameter"]) == {
        "position_bias",
        "dataset_mean",
        "dataset_spread",
        "sigma_dataset",
        "mu",
    }
    assert ranks["rank"].between(0, 99).all()
    table = uniformity(ranks, bins=5)
    assert (table["p_value"] > 0.001).all(), table


# `full` has binomial cells and a position term per dataset, not per ordered dataset pair.
NOT_IN_FULL = {"concentration_dataset", "position_bias_pair", "position_pair_spread"}


def test_full_model_simulates_refusals_then_choices_in_several_conditions():
    design = sbc_design(n_tasks=8, n_datasets=2, n_comparisons=60, n_conditions=3, seed=0)
    truth, data = prior_draw(resolve_spec("full"), design, seed=5)
    assert set(RANKED) - NOT_IN_FULL <= set(truth)
    assert truth["condition_shift"].shape == (2, 2) and truth["mu"].shape == (8,)
    cells = data.cells
    assert data.conditions == ["default", "condition_1", "condition_2"]
    assert set(cells["condition_idx"]) == {0, 1, 2}
    np.testing.assert_array_equal(cells["n"] + cells["r"], design.cells["n"])
    assert cells["r"].sum() > 0 and cells["k"].between(0, cells["n"]).all()


def test_a_realistic_design_asks_each_pair_its_repeats_in_one_order():
    design = sbc_design(
        n_tasks=30, n_datasets=3, n_comparisons=1125, n_conditions=1, seed=0, repeats=5,
        one_order=True,
    )  # fmt: skip
    cells = design.cells
    pairs = np.sort(cells[["a_idx", "b_idx"]].to_numpy(), axis=1)
    assert len(np.unique(pairs, axis=0)) == len(cells)  # no pair in both orders
    assert cells["n"].sum() == 1125 and cells["n"].max() == 5
    assert (cells["n"] == 5).mean() > 0.99  # only the last pair drawn may be cut short
    assert (design.cells[["k", "r"]] == 0).all().all()


def test_simulated_choices_and_refusals_follow_the_drawn_parameters_cell_by_cell():
    design = sbc_design(n_tasks=6, n_datasets=2, n_comparisons=40, n_conditions=3, seed=0)
    many = dataclasses.replace(design, cells=design.cells.assign(n=design.cells["n"] * 4000))
    truth, data = prior_draw(resolve_spec("full"), many, seed=3)
    cells = data.cells
    a, b, condition = (cells[column].to_numpy() for column in ("a_idx", "b_idx", "condition_idx"))
    dataset = data.task_dataset_idx
    sigma = truth["sigma_dataset"][dataset]
    position = truth["position_bias_dataset"]
    bias = (position[dataset[a]] + position[dataset[b]]) / 2

    def probability(utility):
        z = (utility[condition, a] - utility[condition, b] + bias) / np.hypot(sigma[a], sigma[b])
        return first_choice_probability(z, "probit", truth["lapse"])

    n, k, r = (cells[column].to_numpy() for column in ("n", "k", "r"))
    shown = n > 1000

    def worst_deviation(p):
        return np.max(np.abs(k / n - p)[shown] / np.sqrt(p * (1 - p) / n)[shown])

    assert shown.sum() >= 20
    assert worst_deviation(probability(truth["mu_condition"])) < 5
    # The same check rejects the cells read without their conditions' shifts.
    assert (
        worst_deviation(probability(np.broadcast_to(truth["mu"], truth["mu_condition"].shape))) > 5
    )
    propensity = truth["refusal_propensity"]
    q, offered = expit((propensity[a] + propensity[b]) / 2), n + r
    assert np.max(np.abs(r / offered - q) / np.sqrt(q * (1 - q) / offered)) < 5


def test_small_sbc_of_the_full_model_is_not_far_from_uniform():
    ranks = sbc_ranks(
        "full",
        replications=3,
        n_tasks=8,
        n_comparisons=60,
        settings=SamplerSettings(chains=2, draws=100, tune=150, seed=2),
        thin_to=49,
        seed=2,
    )
    assert set(ranks["parameter"]) == set(RANKED) - NOT_IN_FULL
    assert ranks["rank"].between(0, 49).all()
    assert (uniformity(ranks, bins=5)["p_value"] > 0.001).all()
    # A simulation that disagreed with the model would put many truths outside the posterior.
    assert ranks["rank"].isin([0, 49]).mean() < 0.2


def _ranks_table(ranks: np.ndarray) -> pd.DataFrame:
    """A rank table for one family from ranks shaped (replication, entry), among 99 draws."""
    replications, entries = ranks.shape
    return pd.DataFrame(
        {
            "replication": np.repeat(np.arange(replications), entries),
            "parameter": "theta",
            "index": np.tile(np.arange(entries), replications),
            "rank": ranks.ravel(),
            "n_draws": 99,
        }
    )


def test_dependent_ranks_are_tested_as_the_information_they_carry():
    rng = np.random.default_rng(0)
    independent = _ranks_table(rng.integers(0, 100, size=(400, 3)))
    bin_of_rank = independent["rank"] // 10
    assert 0.8 < design_effect(bin_of_rank, independent["replication"], 10) < 1.2
    assert design_effect(bin_of_rank[::3], independent["replication"][::3], 10) == 1.0
    # Three copies of one rank per replication carry one rank's information, not three.
    single = rng.integers(0, 100, size=(150, 1))
    copied = uniformity(_ranks_table(np.repeat(single, 3, axis=1))).iloc[0]
    alone = uniformity(_ranks_table(single)).iloc[0]
    assert copied["design_effect"] == pytest.approx(3.0, rel=0.05)
    assert copied["p_value"] < alone["p_value"]
    assert copied["p_value_clustered"] == pytest.approx(alone["p_value"], rel=0.1)
    # A miscalibrated family stays rejected after the correction.
    skewed = uniformity(_ranks_table(rng.integers(0, 60, size=(200, 3)))).iloc[0]
    assert skewed["p_value_clustered"] < 1e-6
