"""Stated ratings: KL, ICC, the summary, the ordinal model and the `ratings analyze` command."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_array_equal
from scipy.stats import spearmanr
from typer.testing import CliRunner

from bayespref.analysis import ratings as rt
from bayespref.cli.app import app
from bayespref.errors import DataError
from bayespref.report import figures


def table(ratings: dict[str, list], scale: str = "1-5", model: str = "m", template: str = "t"):
    rows = [(task, value, scale) for task, values in ratings.items() for value in values]
    frame = pd.DataFrame(rows, columns=["task_id", "rating", "scale"])
    return rt.validate_ratings(frame.assign(model=model, template=template))


def test_allowed_values_read_scale_labels():
    assert_array_equal(rt.allowed_values("1-5"), [1, 2, 3, 4, 5])
    assert_array_equal(rt.allowed_values("1-5 without 3"), [1, 2, 4, 5])
    with pytest.raises(DataError, match="not of the form"):
        rt.allowed_values("low to high")


def test_kl_from_uniform_matches_hand_computed_values():
    # shares (1/2, 1/4, 1/4) on 3 values
    expected = 0.5 * math.log(1.5) + 2 * 0.25 * math.log(0.75)
    assert rt.kl_from_uniform(np.array([1, 1, 2, 3]), np.array([1, 2, 3])) == pytest.approx(
        expected
    )
    assert rt.kl_from_uniform(np.array([1, 2, 4, 5]), rt.allowed_values("1-5 without 3")) == 0
    assert math.isnan(rt.kl_from_uniform(np.array([]), np.array([1, 2])))


def test_icc1_matches_the_anova_by_hand():
    # means 1.5, 3.5, 5.5; MSB = 2 * 8 / 2 = 8, MSW = 1.5 / 3 = 0.5, n0 = 2
    ratings = table({"a": [1, 2], "b": [3, 4], "c": [5, 6]}, scale="1-6")
    assert rt.icc1(ratings["task_id"], ratings["rating"]) == pytest.approx(7.5 / 8.5)
    # unbalanced: sizes 3, 1, 2; n0 = (6 - 14/6) / 2
    ratings = table({"a": [1, 2, 3], "b": [5], "c": [4, 4]})
    msb = (3 * (2 - 19 / 6) ** 2 + (5 - 19 / 6) ** 2 + 2 * (4 - 19 / 6) ** 2) / 2
    msw = 2 / 3
    n0 = (6 - 14 / 6) / 2
    assert rt.icc1(ratings["task_id"], ratings["rating"]) == pytest.approx(
        (msb - msw) / (msb + (n0 - 1) * msw)
    )


def test_constant_ratings_give_maximal_kl_and_an_undefined_icc():
    ratings = table({f"t{i}": [4, 4, 4] for i in range(10)})
    summary = rt.summarize(ratings).iloc[0]
    assert summary["modal_value"] == 4 and summary["modal_share"] == 1
    assert summary["kl_from_uniform"] == pytest.approx(math.log(5))
    assert np.isnan(summary["icc1"])
    assert np.isnan(rt.icc1(np.array(["a", "b"]), np.array([1.0, 2.0])))  # nobody rated twice
    figures.discrimination_plot(rt.summarize(ratings))  # NaN ICC is drawn, not a crash


def test_summary_describes_a_model_that_says_4_to_almost_everything():
    rng = np.random.default_rng(0)
    values = np.where(rng.random((100, 3)) < 0.91, 4, rng.choice([1, 2, 3, 5], (100, 3)))
    ratings = table({f"t{i}": list(row) for i, row in enumerate(values)})
    ratings.loc[0, "rating"] = np.nan  # one unparsed answer
    summary = rt.summarize(ratings).iloc[0]
    rated = ratings["rating"].dropna()
    assert summary["n_ratings"] == len(rated) and summary["n_unparsed"] == 1
    assert summary["modal_share"] == pytest.approx((rated == 4).mean())
    shares = rated.value_counts(normalize=True).reindex(range(1, 6), fill_value=0)
    kl = sum(p * math.log(5 * p) for p in shares if p > 0)
    assert summary["kl_from_uniform"] == pytest.approx(kl)
    distribution = rt.distribution(ratings)
    assert distribution["value"].tolist() == [1, 2, 3, 4, 5]
    assert distribution["share"].sum() == pytest.approx(1)


def test_a_100_point_scale_piling_on_multiples_of_20_is_far_from_uniform():
    ratings = table({f"t{i}": [20 * (1 + i % 5)] * 2 for i in range(20)}, scale="1-100")
    summary = rt.summarize(ratings).iloc[0]
    assert summary["kl_from_uniform"] == pytest.approx(math.log(100 / 5))
    assert summary["icc1"] == pytest.approx(1)
    shares = rt.distribution(ratings).set_index("value")["share"]
    assert shares[[20, 40, 60, 80, 100]].sum() == pytest.approx(1)


def test_ratings_off_the_scale_or_not_numbers_are_errors_naming_the_row():
    frame = pd.DataFrame({"task_id": ["a", "b"], "rating": [3, 7], "scale": "1-5"})
    with pytest.raises(
        DataError, match=r"row 2.*'7' is not an allowed value of its scale \('1-5'\)"
    ):
        rt.validate_ratings(frame, "r.csv")
    frame["rating"] = ["3", "high"]
    with pytest.raises(DataError, match="row 2.*'high' is not a number"):
        rt.validate_ratings(frame, "r.csv")


def simulated_ratings(n_tasks: int = 30, samples: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    theta = rng.normal(size=n_tasks)
    cuts = np.array([-1.5, -0.5, 0.5, 1.5])
    latent = 3 * theta[:, None] + rng.logistic(size=(n_tasks, samples))
    ratings = {f"t{i}": list(1 + np.searchsorted(cuts, row)) for i, row in enumerate(latent)}
    return table(ratings), pd.Series(theta, index=[f"t{i}" for i in range(n_tasks)])


def test_ordinal_model_recovers_task_order_and_correlates_with_utilities():
    ratings, theta = simulated_ratings()
    latent = rt.fit_ordinal(ratings, draws=100, tune=100, seed=1)
    assert (latent["latent_low"] <= latent["latent_mean"]).all()
    recovered = latent.set_index("task_id")["latent_mean"].reindex(theta.index)
    assert spearmanr(recovered, theta).statistic > 0.8
    utilities = pd.DataFrame({"task_id": theta.index, "mu_mean": theta.to_numpy()})
    correlation = rt.correlate_with_utilities(latent, utilities)
    assert correlation["n_tasks"] == len(theta)
    assert correlation["spearman"] == pytest.approx(spearmanr(recovered, theta).statistic)


def test_ratings_analyze_command(tmp_path):
    ratings, _ = simulated_ratings(n_tasks=10, samples=3)
    ratings.loc[0, "rating"] = np.nan  # an unparsed answer: an empty cell in the CSV
    path = tmp_path / "ratings.csv"
    ratings.to_csv(path, index=False)
    result = CliRunner().invoke(app, ["ratings", "analyze", str(path)])
    assert result.exit_code == 0, result.output
    out = tmp_path / "ratings_analysis"
    summary = pd.read_csv(out / "summary.csv")
    assert summary["icc1"].iloc[0] == pytest.approx(rt.icc1(ratings["task_id"], ratings["rating"]))
    assert summary["n_unparsed"].iloc[0] == 1
    assert (out / "discrimination.png").stat().st_size > 0
    result = CliRunner().invoke(app, ["ratings", "analyze", str(tmp_path / "missing.csv")])
    assert result.exit_code == 2 and "error:" in result.output


def test_ratings_analyze_correlates_the_ordinal_model_with_a_fit(tmp_path):
    ratings, theta = simulated_ratings(n_tasks=12, samples=3, seed=3)
    path = tmp_path / "ratings.csv"
    ratings.to_csv(path, index=False)
    utilities = tmp_path / "utilities.csv"
    pd.DataFrame({"task_id": theta.index, "mu_mean": theta.to_numpy()}).to_csv(utilities)
    args = ["ratings", "analyze", str(path), "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(app, [*args, "--utilities", str(utilities), "--draws", "50"])
    assert result.exit_code == 0, result.output
    latent = pd.read_csv(tmp_path / "out" / "latent_m.csv")
    assert len(latent) == 12
    correlation = json.loads((tmp_path / "out" / "latent_vs_utility.json").read_text())["m"]
    assert correlation["n_tasks"] == 12 and correlation["spearman"] > 0.5
