from __future__ import annotations

import numpy as np

from bayespref.fit import SamplerSettings
from bayespref.sbc import RANKED, prior_draw, sbc_design, sbc_ranks, uniformity
from bayespref.spec import resolve_spec


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


def test_full_model_simulates_refusals_then_choices_in_several_conditions():
    design = sbc_design(n_tasks=8, n_datasets=2, n_comparisons=60, n_conditions=3, seed=0)
    truth, data = prior_draw(resolve_spec("full"), design, seed=5)
    assert set(truth) == set(RANKED)
    assert truth["condition_shift"].shape == (2, 2) and truth["mu"].shape == (8,)
    cells = data.cells
    assert data.conditions == ["default", "condition_1", "condition_2"]
    assert set(cells["condition_idx"]) == {0, 1, 2}
    np.testing.assert_array_equal(cells["n"] + cells["r"], design.cells["n"])
    assert cells["r"].sum() > 0 and cells["k"].between(0, cells["n"]).all()


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
    assert set(ranks["parameter"]) == set(RANKED)
    assert ranks["rank"].between(0, 49).all()
    assert (uniformity(ranks, bins=5)["p_value"] > 0.001).all()
    # A simulation that disagreed with the model would put many truths outside the posterior.
    assert ranks["rank"].isin([0, 49]).mean() < 0.2
