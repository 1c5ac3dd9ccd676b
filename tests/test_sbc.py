from __future__ import annotations

from bayespref.sbc import sbc_ranks, uniformity


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
