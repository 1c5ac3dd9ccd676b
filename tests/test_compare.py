from __future__ import annotations

import pytest

import bayespref as bp
from bayespref.checks.loo import COMPARE_COLUMNS, compare

SETTINGS = bp.SamplerSettings(chains=2, draws=300, tune=300, seed=2)


def fit_all(tmp_path_factory, simulation, models: list[str]) -> dict[str, object]:
    root = tmp_path_factory.mktemp("compare")
    paths = {}
    for model in models:
        paths[model] = root / model
        bp.fit(
            simulation.comparisons,
            simulation.tasks,
            model=model,
            settings=SETTINGS,
            out=paths[model],
            progressbar=False,
        )
    return paths


@pytest.fixture(scope="module")
def position_fits(tmp_path_factory):
    simulation = bp.simulate(
        n_tasks=50, n_datasets=2, n_comparisons=2000, repeats=2, position_bias=0.5, seed=3
    )
    return fit_all(tmp_path_factory, simulation, ["thurstone", "position"])


def test_position_term_wins_when_there_is_position_bias(position_fits):
    result = compare([position_fits["thurstone"], position_fits["position"]])
    table = result.table.set_index("model")
    assert list(result.table.columns[: len(COMPARE_COLUMNS)]) == COMPARE_COLUMNS
    assert table.loc["position", "rank"] == 0
    assert -table.loc["thurstone", "elpd_diff"] > 2 * table.loc["thurstone", "dse"]
    assert "cell" in result.loo_unit


def test_posterior_predictive_check_flags_the_missing_position_term(position_fits):
    without = bp.load_fit(position_fits["thurstone"]).ppc.set_index("statistic")
    with_term = bp.load_fit(position_fits["position"]).ppc.set_index("statistic")
    assert without.loc["first_position_win_rate", "outside"]
    assert not with_term.loc["first_position_win_rate", "outside"]
    assert {"win_rate[dataset_0]", "win_rate[dataset_1]"} <= set(with_term.index)


def test_per_dataset_position_wins_when_bias_differs_by_dataset(tmp_path_factory):
    simulation = bp.simulate(
        bp.SimulationConfig(
            n_tasks=60,
            n_datasets=2,
            n_comparisons=2400,
            repeats=2,
            position_bias_by_dataset=(0.8, -0.8),
            seed=5,
        )
    )
    paths = fit_all(tmp_path_factory, simulation, ["hierarchical", "position-by-dataset"])
    table = compare(list(paths.values())).table.set_index("model")
    assert table.loc["position-by-dataset", "rank"] == 0
    assert -table.loc["hierarchical", "elpd_diff"] > table.loc["hierarchical", "dse"]


def test_simpler_model_holds_its_own_without_position_bias(tmp_path_factory):
    simulation = bp.simulate(
        n_tasks=50, n_datasets=1, n_comparisons=2000, repeats=2, position_bias=0.0, seed=8
    )
    paths = fit_all(tmp_path_factory, simulation, ["thurstone", "position"])
    table = compare(list(paths.values())).table.set_index("model")
    if table.loc["thurstone", "rank"] != 0:
        assert -table.loc["thurstone", "elpd_diff"] <= table.loc["thurstone", "dse"]


def test_compare_refuses_different_data_and_missing_log_likelihood(position_fits, tmp_path):
    other = bp.simulate(n_tasks=20, n_comparisons=150, seed=1)
    elsewhere = tmp_path / "other"
    bp.fit(
        other.comparisons,
        other.tasks,
        model="thurstone",
        settings=SETTINGS,
        out=elsewhere,
        progressbar=False,
        log_likelihood=False,
    )
    with pytest.raises(bp.FitError, match="were made on different data"):
        compare([position_fits["thurstone"], elsewhere])
    with pytest.raises(bp.FitError, match="at least two"):
        compare([elsewhere])


def test_a_cell_certain_in_every_draw_counts_without_breaking_psis(position_fits):
    """Near-certain cells whose log-likelihood rounds to 0 in every draw (real data) made PSIS
    raise 'All tail values are the same'; leaving such a cell out changes nothing."""
    import numpy as np

    from bayespref.checks.loo import loo

    tree = bp.load_fit(position_fits["position"]).idata.copy()
    log_lik = tree["log_likelihood"]["first_chosen"]
    before = loo(tree)
    tree["log_likelihood"]["first_chosen"] = log_lik.where(log_lik["cell"] != 0, 0.0)
    after = loo(tree)
    assert float(after.pareto_k[0]) == 0.0 and float(after.elpd_i[0]) == 0.0
    np.testing.assert_allclose(after.elpd_i[1:], before.elpd_i[1:], rtol=1e-6)


def test_report_draws_a_global_position_term_and_none(position_fits, tmp_path):
    from bayespref.report.html import report

    for model in ("position", "thurstone"):
        files = report(position_fits[model], tmp_path / f"{model}.html")
        assert (files / "position.png").exists() and (files / "position-replicated.png").exists()
