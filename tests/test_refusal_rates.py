from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from typer.testing import CliRunner

import bayespref as bp
from bayespref.analysis.refusal_rates import classify_refusals, read_refusal_rates, refusal_rates
from bayespref.cli.app import app
from bayespref.collect.complete import CompleteConfig, complete
from bayespref.collect.engines import EngineOptions
from bayespref.collect.engines.simulated import read_truth
from bayespref.collect.engines.simulated_authors import add_completion_truth
from bayespref.collect.judge import JudgeConfig, judge
from bayespref.errors import DataError

runner = CliRunner()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """20 completions of each of 10 tasks whose refusal probabilities span 0 to 0.9."""
    root = tmp_path_factory.mktemp("refusals")
    simulation = bp.simulate(n_tasks=10, n_datasets=2, n_comparisons=10, refusal_rate=0.2, seed=3)
    bp.write_simulation(simulation, root / "truth")
    add_completion_truth(root / "truth", completion_refusal_shift=1.0)
    tasks, truth, _ = read_truth(root / "truth")
    options = EngineOptions(truth=str(root / "truth"))
    config = CompleteConfig("simulated", ("m1",), samples=20, seed=1)
    complete(config, tasks, root / "done", options)
    completions = pd.read_parquet(root / "done" / "completions.parquet")
    judge(JudgeConfig("simulated", ("judge",), "refusal-judge"), completions, root / "j", options)
    probability = pd.Series(expit(truth["refusal_logit"] + 1.0).to_numpy(), index=truth["task_id"])
    return root, completions, probability


def test_rates_per_task_follow_the_truth_with_intervals(world):
    _, completions, probability = world
    classified = classify_refusals(completions)
    rates = refusal_rates(classified).set_index("task_id")
    assert len(rates) == 10 and rates["n"].eq(20).all()
    assert ((rates["low"] <= rates["rate"]) & (rates["rate"] <= rates["high"])).all()
    truth = probability.reindex(rates.index)
    assert np.corrcoef(rates["rate"], truth)[0, 1] > 0.8
    covered = (rates["low"] < truth) & (truth < rates["high"])
    assert covered.mean() >= 0.8
    # 0 of 20 still has an interval above 0
    assert (rates["high"] > 0).all()


def test_the_llm_judge_agrees_with_the_rule_and_the_command_writes_both(world, tmp_path):
    root, completions, _ = world
    judged = pd.read_parquet(root / "j" / "ratings.parquet")
    assert judged["protocol"].eq("refusal-judge").all() and judged["scale"].eq("0-1").all()
    classified = classify_refusals(completions, judged)
    assert (classified["refusal_judge"].astype(bool) == classified["refusal_rule"]).all()
    result = runner.invoke(
        app,
        ["refusals", str(root / "done"), "--judged", str(root / "j" / "ratings.parquet"),
         "--out", str(tmp_path / "r")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rates = pd.read_csv(tmp_path / "r" / "refusal_rates.csv")
    assert set(rates["method"]) == {"rule", "judge"} and len(rates) == 20
    wrong = judged.assign(protocol="completion-rating")
    wrong.to_csv(tmp_path / "wrong.csv", index=False)
    bad = runner.invoke(
        app,
        ["refusals", str(root / "done"), "--judged", str(tmp_path / "wrong.csv"),
         "--out", str(tmp_path / "r2")],
    )  # fmt: skip
    assert bad.exit_code == 2 and "row 1" in bad.output and "column 'protocol'" in bad.output


def test_report_plots_refusal_rates_of_completions_when_given(small_fit_dir, tmp_path):
    tasks = pd.read_csv(small_fit_dir / "task_counts.csv")["task_id"].astype(str)
    rates = pd.DataFrame({"task_id": tasks, "dataset": "d", "n": 4, "refusals": 1})
    rates = rates.assign(rate=np.linspace(0, 1, len(tasks)), low=0.0, high=1.0)
    both = pd.concat([rates.assign(method="rule", rate=0.5), rates.assign(method="judge")])
    path = tmp_path / "refusal_rates.csv"
    both.to_csv(path, index=False)
    out = tmp_path / "report.html"
    result = CliRunner().invoke(
        app, ["report", str(small_fit_dir), "--out", str(out), "--refusal-rates", str(path)]
    )
    assert result.exit_code == 0, result.output
    plotted = pd.read_csv(tmp_path / "report_files" / "refusal_rates.csv")
    assert len(plotted) == len(tasks)
    expected = rates.set_index("task_id")["rate"]
    assert np.allclose(plotted.set_index("task_id")["rate"], expected[plotted["task_id"]])
    assert (tmp_path / "report_files" / "refusal_utility_corr.csv").exists()
    assert "share of its completions that refuse" in out.read_text()


def test_refusal_rates_that_are_not_numbers_are_named_by_row_and_column(tmp_path):
    path = tmp_path / "rates.csv"
    path.write_text("task_id,rate,low,high\nt1,0.5,0.1,0.9\nt2,half,0.1,0.9\n")
    with pytest.raises(DataError, match=r"row 2 \(line 3\), column 'rate': 'half' is not a number"):
        read_refusal_rates(path)
