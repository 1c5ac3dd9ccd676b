from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from bayespref.cli.app import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def test_simulate_fit_predict_end_to_end(tmp_path):
    sim = tmp_path / "sim"
    result = invoke(
        "simulate", "--tasks", 30, "--datasets", 2, "--comparisons", 400, "--seed", 1, "--out", sim
    )
    assert result.exit_code == 0, result.output
    fit_dir = tmp_path / "fit"
    result = invoke(
        "fit",
        sim / "comparisons.csv",
        "--tasks",
        sim / "tasks.csv",
        "--out",
        fit_dir,
        "--chains",
        2,
        "--draws",
        100,
        "--tune",
        100,
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "Top tasks by utility" in result.output and "position_bias" in result.output
    assert "dataset_mean[dataset_0]" in result.output
    assert len(pd.read_csv(fit_dir / "utilities.csv")) == 30
    predictions = tmp_path / "predictions.csv"
    result = invoke("predict", fit_dir, sim / "comparisons.csv", "--out", predictions)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(predictions)
    assert len(frame) == 400 and {"p_first_mean", "p_first_low", "p_first_high"} <= set(
        frame.columns
    )

    again = invoke("fit", sim / "comparisons.csv", "--out", fit_dir)
    assert again.exit_code == 2 and "already exists" in again.output


def test_bad_input_exits_2_with_location(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("task_a,task_b,choice\nx,y,maybe\n")
    result = invoke("fit", path, "--out", tmp_path / "out")
    assert result.exit_code == 2
    assert "row 1 (line 2), column 'choice': unknown choice 'maybe'" in result.output
    assert not (tmp_path / "out").exists()
    result = invoke("fit", path, "--out", tmp_path / "out", "--model", "nope")
    assert result.exit_code == 2 and "unknown model 'nope'" in result.output
    result = invoke("fit", path, "--out", tmp_path / "out", "--precision", "float16")
    assert result.exit_code == 2 and "unknown precision 'float16'" in result.output


def test_simulate_rejects_impossible_design(tmp_path):
    result = invoke("simulate", "--tasks", 5, "--comparisons", 100, "--out", tmp_path / "s")
    assert result.exit_code == 2 and "need more distinct pairs" in result.output


def test_models_lists_every_named_model_with_its_description():
    from bayespref.model.spec import DEFAULT_MODEL, available_models

    result = runner.invoke(app, ["models"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    rows = [line.split("│") for line in result.output.splitlines() if line.count("│") == 3]
    listed = {cells[1].split()[0]: cells[2] for cells in rows if cells[1].strip()}
    assert sorted(listed) == sorted(available_models())
    assert rows[0][1].split()[0] == DEFAULT_MODEL  # the header row has no bars of this kind
    assert "not near-deterministic choices" in listed["task-lapse"]
