from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayespref as bp
from bayespref.cli.app import app
from bayespref.collect.complete import CompleteConfig, complete
from bayespref.collect.engines import EngineOptions
from bayespref.collect.engines.simulated import read_truth
from bayespref.collect.engines.simulated_authors import add_completion_truth
from bayespref.data.comparisons import read_comparisons

runner = CliRunner()
ENTRY = "from bayespref.cli.app import app; app()"


def invoke(*args):
    return runner.invoke(app, ["judge", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A truth with a self-preference, and completions of 6 tasks by m1 and m2 in 2 conditions."""
    root = tmp_path_factory.mktemp("world")
    simulation = bp.simulate(
        n_tasks=6, n_datasets=2, n_comparisons=10, condition_shifts=((2.0, 2.0),), seed=1
    )
    bp.write_simulation(simulation, root / "truth")
    add_completion_truth(root / "truth", self_preference=3.0, post_task_position_bias=-0.5)
    tasks, _, _ = read_truth(root / "truth")
    config = CompleteConfig(
        engine="simulated",
        models=("m1", "m2"),
        conditions=(("default", ""), ("condition_1", "You love helping.")),
    )
    complete(config, tasks, root / "done", EngineOptions(truth=str(root / "truth")))
    return root


def args_for(world, out, *more):
    return [
        world / "done", "--out", out, "--engine", "simulated", "--truth", world / "truth",
        "--rater", "m1", "--rater", "m2", *more,
    ]  # fmt: skip


def test_pairs_of_transcripts_in_both_orders_with_raters_and_authors(world, tmp_path):
    out = tmp_path / "judged"
    result = invoke(*args_for(world, out))
    assert result.exit_code == 0, result.output
    # 12 completions per condition: 12 * 11 ordered pairs less 12 of one task, 2 conditions
    # and 2 raters
    assert "480 of 480 judgments made" in result.output
    table = read_comparisons(out / "comparisons.parquet", pool=True)  # raters pooled by design
    for column in ("rater_model", "author_model_a", "author_model_b", "completion_a"):
        assert column in table.columns
    assert set(table["rater_model"]) == {"m1", "m2"}
    assert table["model"].eq(table["rater_model"]).all()
    assert set(table["condition"]) == {"default", "condition_1"}
    assert table["protocol"].eq("post-task-transcripts-revealed").all()
    shown = table[["completion_a", "completion_b", "rater_model"]]
    ordered = set(shown.itertuples(index=False, name=None))
    assert all((b, a, r) in ordered for a, b, r in ordered)
    assert set(table["choice"]) == {"a", "b"}
    # the self-preference of 3 shows: a rater picks its own transcript over the other's
    mixed = table[table["author_model_a"] != table["author_model_b"]]
    own_first = mixed["author_model_a"] == mixed["rater_model"]
    own_won = np.where(own_first, mixed["choice"] == "a", mixed["choice"] == "b")
    assert own_won.mean() > 0.75
    # the completion-time system prompt is not shown, nor is it by default
    shards = [json.loads(line) for p in (out / "shards").glob("*.jsonl") for line in p.open()]
    assert len(shards) == 480
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["keep_condition"] is False and manifest["status"]["complete"]


def test_the_condition_is_stripped_unless_kept(world, tmp_path):
    from bayespref.collect.judge import JudgeConfig, plan_judging
    from bayespref.collect.templates import load_template

    completions = pd.read_parquet(world / "done" / "completions.parquet")
    template = load_template("completion-rating-1-5")
    for keep in (False, True):
        config = JudgeConfig("simulated", ("m1",), "completion-rating-1-5", keep_condition=keep)
        trials = plan_judging(config, completions, template)["m1"]
        shown = [t.messages[-1]["content"] for t in trials]
        assert len(trials) == 24
        assert sum("You love helping." in text for text in shown) == (12 if keep else 0)


def test_ratings_of_completions_carry_the_author_and_the_condition_effect(world, tmp_path):
    out = tmp_path / "rated"
    result = invoke(*args_for(world, out, "--protocol", "completion-rating-1-10", "--samples", 3))
    assert result.exit_code == 0, result.output
    ratings = pd.read_parquet(out / "ratings.parquet")
    assert len(ratings) == 24 * 3 * 2
    assert {"rater_model", "author_model", "completion_id", "condition"} <= set(ratings.columns)
    means = ratings.groupby("condition")["rating"].mean()
    assert means["condition_1"] > means["default"] + 1  # the shift of 2 survives the stripping


def test_an_unbalanced_grid_is_refused_unless_allowed(world, tmp_path):
    completions = pd.read_parquet(world / "done" / "completions.parquet")
    first = completions["task_id"].iloc[0]
    drop = (completions["author_model"] == "m2") & (completions["task_id"] == first)
    path = tmp_path / "unbalanced.parquet"
    completions[~drop].to_parquet(path)
    args = args_for(world, tmp_path / "j")
    result = invoke(path, *args[1:])
    assert result.exit_code == 2
    assert "unbalanced design, author 'm2' has no completion of task" in result.output
    assert "column 'author_model'" in result.output
    allowed = invoke(path, *args[1:], "--allow-unbalanced")
    assert allowed.exit_code == 0, allowed.output
    assert "warning (data):" in allowed.output and "unbalanced design" in allowed.output


def test_a_killed_judging_run_resumes_without_lost_or_repeated_judgments(world, tmp_path):
    reference = tmp_path / "reference"
    assert invoke(*args_for(world, reference)).exit_code == 0
    out = tmp_path / "run"
    args = [str(a) for a in args_for(world, out, "--batch-size", 20, "--latency", 0.05)]
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "judge", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(list((out / "shards").glob("*.jsonl"))) < 5 and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (out / "comparisons.parquet").exists()
    result = invoke(*args[:-2])
    assert result.exit_code == 0, result.output
    keys = [json.loads(line)["key"] for p in (out / "shards").glob("*.jsonl") for line in p.open()]
    assert len(keys) == 480 and len(set(keys)) == 480
    pd.testing.assert_frame_equal(
        pd.read_parquet(out / "comparisons.parquet"),
        pd.read_parquet(reference / "comparisons.parquet"),
    )
