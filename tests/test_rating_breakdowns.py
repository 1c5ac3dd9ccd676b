from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

import bayespref as bp
from bayespref.analysis.rating_breakdowns import breakdown, rater_author_table
from bayespref.cli.app import app
from bayespref.collect.complete import CompleteConfig, complete
from bayespref.collect.engines import EngineOptions
from bayespref.collect.engines.simulated import read_truth
from bayespref.collect.engines.simulated_authors import add_completion_truth
from bayespref.collect.judge import JudgeConfig, judge


@pytest.fixture(scope="module")
def rated(tmp_path_factory):
    """Two raters rate completions by both of 8 tasks; self-preference 1.5, condition shift 2."""
    root = tmp_path_factory.mktemp("grid")
    simulation = bp.simulate(
        n_tasks=8, n_datasets=2, n_comparisons=10, condition_shifts=((2.0, 2.0),), seed=7
    )
    bp.write_simulation(simulation, root / "truth")
    add_completion_truth(root / "truth", self_preference=1.5)
    tasks, _, _ = read_truth(root / "truth")
    options = EngineOptions(truth=str(root / "truth"))
    conditions = (("default", ""), ("condition_1", "You love helping."))
    done = complete(
        CompleteConfig("simulated", ("m1", "m2"), conditions), tasks, root / "c", options
    )
    config = JudgeConfig("simulated", ("m1", "m2"), "completion-rating-1-10", samples=4)
    result = judge(config, pd.read_parquet(done.table), root / "j", options)
    return result.table


def test_rater_author_grid_shows_the_self_cells_above_the_cross_cells(rated):
    grid = rater_author_table(pd.read_parquet(rated))
    assert len(grid) == 4 and grid["n"].eq(8 * 2 * 4).all()
    own, cross = grid[grid["self"]]["mean"], grid[~grid["self"]]["mean"]
    assert own.min() > cross.max()
    assert rater_author_table(pd.read_parquet(rated).drop(columns="rater_model")) is None


def test_ratings_analyze_writes_breakdowns_by_condition_dataset_and_rater_author(rated, tmp_path):
    out = tmp_path / "analysis"
    result = CliRunner().invoke(app, ["ratings", "analyze", str(rated), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "mean rating by rater (rows) and author" in result.output
    by_condition = pd.read_csv(out / "by_condition.csv")
    assert len(by_condition) == 2 * 2  # two raters (models) x two conditions
    means = by_condition.groupby("condition")["mean"].mean()
    assert means["condition_1"] > means["default"] + 1
    assert set(pd.read_csv(out / "by_dataset.csv")["dataset"]) == {"dataset_0", "dataset_1"}
    assert len(pd.read_csv(out / "rater_author.csv")) == 4
    no_condition = breakdown(pd.read_parquet(rated).drop(columns="condition"), "condition")
    assert set(no_condition["condition"]) == {"default"}
