"""Position bias where it lives: a term per ordered dataset pair, and first-shown win rates per
dataset and per ordered dataset pair against their posterior replicates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import bayespref as bp
from bayespref.checks.ppc import position_rate_checks

SETTINGS = bp.SamplerSettings(chains=2, draws=300, tune=300, seed=3)
# Per ordered pair (row: first-shown task's dataset, column: second's): the mean of per-dataset
# terms (0.6, 0, -0.6) plus an interaction, +0.8 within a dataset and -0.4 across.
BY_DATASET = np.array([0.6, 0.0, -0.6])
TRUE_PAIR = (BY_DATASET[:, None] + BY_DATASET[None, :]) / 2 + np.where(np.eye(3), 0.8, -0.4)


@pytest.fixture(scope="module")
def pair_simulation():
    return bp.simulate(
        n_tasks=60,
        n_datasets=3,
        n_comparisons=3000,
        repeats=2,
        position_bias_by_pair=tuple(map(tuple, TRUE_PAIR)),
        seed=12,
    )


@pytest.fixture(scope="module")
def pair_fits(pair_simulation):
    return {
        model: bp.fit(
            pair_simulation.comparisons,
            pair_simulation.tasks,
            model=model,
            settings=SETTINGS,
            progressbar=False,
        )
        for model in ("position-by-dataset", "position-by-dataset-pair")
    }


def test_simulation_draws_the_ordered_pairs_bias(pair_simulation):
    assert pair_simulation.parameters["position_bias_by_pair"] == TRUE_PAIR.tolist()
    with pytest.raises(ValueError, match="n_datasets rows"):
        bp.SimulationConfig(n_datasets=3, position_bias_by_pair=((0.0, 1.0), (1.0, 0.0)))


def test_pair_terms_are_recovered(pair_fits, pair_simulation):
    fit = pair_fits["position-by-dataset-pair"]
    assert fit.diagnostics.measures["divergences"] == 0
    params = fit.params.set_index("name")
    datasets = pair_simulation.parameters["datasets"]
    rows = params.loc[[f"position_bias_pair[{d}, {e}]" for d in datasets for e in datasets]]
    truth = TRUE_PAIR.ravel()
    covered = (rows["low"].to_numpy() <= truth) & (truth <= rows["high"].to_numpy())
    assert covered.sum() >= 8
    assert np.abs(rows["mean"].to_numpy() - truth).max() < 0.3
    assert params.loc["position_pair_spread", "low"] > 0.1
    mu = fit.utilities.set_index("task_id").loc[pair_simulation.truth["task_id"], "mu_mean"]
    assert np.corrcoef(mu, pair_simulation.truth["mu"])[0, 1] > 0.9


def _observed(comparisons: pd.DataFrame) -> pd.DataFrame:
    """First-shown win rates counted straight from the trials."""
    chosen = comparisons[comparisons["choice"].isin(["a", "b"])].assign(
        first=lambda frame: frame["choice"] == "a"
    )
    by_first = chosen.groupby("dataset_a")["first"].agg(["mean", "size"]).reset_index()
    by_pair = chosen.groupby(["dataset_a", "dataset_b"])["first"].agg(["mean", "size"])
    return pd.concat([by_first.assign(dataset_b="all"), by_pair.reset_index()], ignore_index=True)


def test_position_rate_checks_count_exactly_and_cover_under_the_true_model(
    pair_fits, pair_simulation
):
    fit = pair_fits["position-by-dataset-pair"]
    table = position_rate_checks(fit, fit.cells)
    observed = _observed(pair_simulation.comparisons)
    assert len(table) == 3 + 9
    np.testing.assert_array_equal(table["first_dataset"], observed["dataset_a"])
    np.testing.assert_array_equal(table["second_dataset"], observed["dataset_b"])
    np.testing.assert_array_equal(table["trials"], observed["size"])
    np.testing.assert_allclose(table["observed"], observed["mean"], rtol=1e-12)
    assert not table["outside"].any()
    # The same draws and seed give the same table.
    pd.testing.assert_frame_equal(table, position_rate_checks(fit, fit.cells))


def test_position_rate_checks_flag_the_missing_pair_term(pair_fits):
    fit = pair_fits["position-by-dataset"]
    table = position_rate_checks(fit, fit.cells)
    pairs = table[table["second_dataset"] != "all"]
    within = pairs[pairs["first_dataset"] == pairs["second_dataset"]]
    # Within a dataset the first-shown task wins more than a mean of dataset terms can give.
    assert (within["observed"] > within["replicated_high"]).sum() >= 2


def test_report_shows_the_pair_model(pair_fits, tmp_path):
    from bayespref.report.html import build_sections

    sections = build_sections(pair_fits["position-by-dataset-pair"], tmp_path)
    assert [s.key for s in sections][3:5] == ["position", "position-replicated"]
    assert len(pd.read_csv(tmp_path / "position_ppc.csv")) == 3 + 9
