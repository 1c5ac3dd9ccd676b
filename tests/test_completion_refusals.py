"""Refusal counts of completions in the refusal model (`fit --refusal-rates`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import FAST
from typer.testing import CliRunner

import bayespref as bp
from bayespref.checks.loo import compare
from bayespref.cli.app import app
from bayespref.data.simulation import simulate_completion_refusals
from bayespref.workflows.fitting import with_completion_refusals

SHIFT = 2.0  # completions refuse more than choices: logit + 2


@pytest.fixture(scope="module")
def world():
    """40 tasks whose refusal propensity correlates with utility: 12 refusals in 1,000 choice
    trials, 73 in 20 completions of each task."""
    simulation = bp.simulate(
        n_tasks=40,
        n_datasets=2,
        n_comparisons=1000,
        repeats=2,
        position_bias=0.0,
        refusal_rate=0.01,
        refusal_utility_corr=-0.7,
        seed=5,
    )
    counts = simulate_completion_refusals(simulation.truth, 20, shift=SHIFT, seed=1)
    return simulation, counts


@pytest.fixture(scope="module")
def fits(tmp_path_factory, world):
    """The refusal model without and with the completions (the latter through the command)."""
    simulation, counts = world
    root = tmp_path_factory.mktemp("completion-refusals")
    simulation.comparisons.to_csv(root / "comparisons.csv", index=False)
    simulation.tasks.to_csv(root / "tasks.csv", index=False)
    counts.to_csv(root / "refusal_rates.csv", index=False)
    without = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        model="refusal",
        settings=FAST,
        out=root / "without",
        progressbar=False,
    )
    result = CliRunner().invoke(
        app,
        ["fit", str(root / "comparisons.csv"), "--tasks", str(root / "tasks.csv"),
         "--model", "refusal", "--refusal-rates", str(root / "refusal_rates.csv"),
         "--chains", "2", "--draws", "200", "--tune", "200", "--seed", "1", "--no-progress",
         "--out", str(root / "with")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return root, without, bp.load_fit(root / "with"), result.output


def _propensity_corr(fit: bp.Fit, truth: pd.DataFrame) -> float:
    utilities = fit.utilities.set_index("task_id")
    true = truth.set_index("task_id").loc[utilities.index, "refusal_logit"]
    return float(np.corrcoef(utilities["refusal_mean"], true)[0, 1])


def test_completions_recover_propensities_and_their_correlation_with_utility(fits, world):
    simulation, _ = world
    _, without, with_completions, _ = fits
    truth = simulation.truth
    alone, joined = _propensity_corr(without, truth), _propensity_corr(with_completions, truth)
    assert joined > 0.7 and joined > alone + 0.2  # 0.79 against 0.30
    true_corr = np.corrcoef(truth["mu"], truth["refusal_logit"])[0, 1]
    rows = [fit.params.set_index("name").loc["refusal_utility_corr_tasks"] for fit in fits[1:3]]
    width = [row["high"] - row["low"] for row in rows]
    assert width[1] < 0.7 * width[0]  # 0.43 against 0.79
    assert rows[1]["low"] <= true_corr <= rows[1]["high"] and rows[1]["high"] < -0.3
    params = with_completions.params.set_index("name")
    # completion logit = SHIFT + refusal logit: intercept SHIFT - 4 at propensity -4, slope 1
    slope = params.loc["completion_refusal_slope"]
    intercept = params.loc["completion_refusal_intercept"]
    assert slope["low"] <= 1.0 <= slope["high"]
    assert intercept["low"] <= SHIFT - 4 <= intercept["high"]


def test_the_fit_keeps_the_counts_and_loo_sees_the_choice_cells_only(fits, world):
    _, counts = world
    root, without, with_completions, output = fits
    idata = with_completions.idata
    assert np.array_equal(idata["observed_data"]["completion_refused"].values, counts["refusals"])
    assert np.array_equal(idata["constant_data"]["n_completions"].values, counts["n"])
    assert list(idata["observed_data"]["completed_task"].values) == list(counts["task_id"])
    assert set(idata["log_likelihood"].data_vars) == {"first_chosen", "refused"}
    assert "completion_refusals_hash" in idata.attrs
    assert with_completions.completion_refusals["task_id"].tolist() == counts["task_id"].tolist()
    assert without.completion_refusals is None
    ppc = with_completions.ppc.set_index("statistic")
    checked = ppc.filter(like="completion_refusal_rate", axis=0)
    assert len(checked) == 2 and not checked["outside"].any()
    shares = counts.groupby("dataset")[["refusals", "n"]].sum()
    assert np.allclose(checked["observed"], shares["refusals"] / shares["n"])
    noted = with_completions.diagnostics.data.refusals
    assert "73 refusals in 800 completions of 40 tasks" in noted
    assert "completions" not in without.diagnostics.data.refusals
    assert "also observed through 73 refusals in 800 completions" in " ".join(output.split())
    table = compare([root / "without", root / "with"]).table
    assert len(table) == 2 and table["elpd_loo"].notna().all()


def test_refusal_rates_need_the_refusal_model(world, tmp_path):
    simulation, counts = world
    with pytest.raises(bp.FitError, match='refusal = "modelled".*has refusal = "excluded"'):
        bp.fit(simulation.comparisons, simulation.tasks, refusal_rates=counts)
    counts.to_csv(tmp_path / "rates.csv", index=False)
    simulation.comparisons.to_csv(tmp_path / "comparisons.csv", index=False)
    result = CliRunner().invoke(
        app,
        ["fit", str(tmp_path / "comparisons.csv"), "--model", "hierarchical",
         "--refusal-rates", str(tmp_path / "rates.csv"), "--out", str(tmp_path / "fit")],
    )  # fmt: skip
    output = " ".join(result.output.split())
    assert result.exit_code == 2 and 'need a model with refusal = "modelled"' in output
    assert not (tmp_path / "fit").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.drop(columns="n"), "column 'n': required column missing"),
        (lambda t: t.assign(n=t["n"].astype(object).where(t.index != 2, "x")),
         r"row 3 \(line 4\), column 'n': 'x' is not a whole number"),
        (lambda t: t.assign(refusals=t["refusals"].where(t.index != 1, 2.5)),
         r"row 2 \(line 3\), column 'refusals': '2.5' is not a whole number"),
        (lambda t: t.assign(refusals=t["refusals"].where(t.index != 4, 21)),
         r"row 5 \(line 6\), column 'refusals': 21 refusals of 20 completions"),
        (lambda t: t.assign(task_id="x" + t["task_id"]), "column 'task_id': no task is in the"),
        (lambda t: t.assign(dataset=t["dataset"].where(t.index != 6, "dataset_1")),
         r"row 7 \(line 8\), column 'dataset': task 't00006' is in dataset 'dataset_1' here"),
        (lambda t: pd.concat([t, t.iloc[[0]]]), "task 't00000' has several rates"),
    ],
)  # fmt: skip
def test_bad_refusal_tables_are_named_by_file_row_and_column(world, tmp_path, change, message):
    simulation, counts = world
    path = tmp_path / "rates.csv"
    change(counts).to_csv(path, index=False)
    with pytest.raises(bp.DataError, match=message) as raised:
        bp.fit(simulation.comparisons, simulation.tasks, model="refusal", refusal_rates=path)
    assert str(path) in str(raised.value)


def test_tasks_never_compared_are_left_out_with_a_warning(world):
    simulation, counts = world
    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    extra = pd.DataFrame({"task_id": ["new1", "new2"], "dataset": "d", "n": 5, "refusals": 1})
    # the judge's rows are used where the table has both methods
    table = pd.concat([counts.iloc[5:].assign(method="rule", refusals=0), counts.iloc[5:], extra])
    table["method"] = table["method"].fillna("judge")
    with pytest.warns(bp.DataWarning, match="2 tasks in <refusal rates> are not in the"):
        aligned = with_completion_refusals(data, table)
    completions = aligned.completion_refusals
    assert completions.left_out == ("new1", "new2") and aligned.notes[-1].endswith("new1, new2")
    assert np.array_equal(completions.task_idx, np.arange(5, 40))  # tasks 0-4 have none
    assert np.array_equal(completions.refusals, counts["refusals"].iloc[5:])
