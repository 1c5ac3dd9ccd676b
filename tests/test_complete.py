from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from typer.testing import CliRunner

import bayespref as bp
from bayespref.cli.app import app
from bayespref.collect.engines.simulated_authors import add_completion_truth
from bayespref.collect.parse import is_refusal

runner = CliRunner()
ENTRY = "from bayespref.cli.app import app; app()"


def invoke(*args):
    return runner.invoke(app, ["complete", *(str(a) for a in args)])


@pytest.fixture(scope="module")
def truth_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim") / "truth"
    simulation = bp.simulate(
        n_tasks=12,
        n_datasets=2,
        n_comparisons=20,
        refusal_rate=0.2,
        condition_shifts=((1.0, 1.0),),
        seed=4,
    )
    bp.write_simulation(simulation, folder)
    add_completion_truth(folder, completion_refusal_shift=1.0)
    return folder


def base_args(truth_dir, out):
    return [
        "--engine", "simulated", "--truth", truth_dir, "--out", out,
        "--model", "m1", "--model", "m2",
        "--condition", "condition_1=You love helping.",
        "--samples", 2, "--seed", 3,
    ]  # fmt: skip


def test_completions_table_holds_every_author_condition_and_sample(truth_dir, tmp_path):
    out = tmp_path / "run"
    result = invoke(*base_args(truth_dir, out))
    assert result.exit_code == 0, result.output
    assert "96 of 96 completions made" in result.output
    table = pd.read_parquet(out / "completions.parquet")
    assert list(table.columns[:10]) == [
        "completion_id", "task_id", "dataset", "prompt", "author_model", "condition",
        "system_prompt", "sample", "completion", "finish_reason",
    ]  # fmt: skip
    assert table["completion_id"].is_unique
    counts = table.groupby(["task_id", "author_model", "condition"]).size()
    assert len(counts) == 12 * 2 * 2 and counts.eq(2).all()
    assert (
        table.loc[table["condition"] == "condition_1", "system_prompt"]
        .eq("You love helping.")
        .all()
    )
    assert table.loc[table["condition"] == "default", "system_prompt"].eq("").all()
    assert table["finish_reason"].eq("stop").all()
    # the author and condition are in the simulated text, and refusals read as refusals
    assert (
        table["completion"].str.contains("author=") & table["completion"].str.contains("condition=")
    ).all()
    refused = table["completion"].str.contains("refused=1")
    assert 0 < refused.mean() < 1
    assert (table["completion"].map(is_refusal) == refused).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["models"] == ["m1", "m2"]
    assert manifest["status"]["complete"] is True

    shards = sorted((out / "shards").glob("*.jsonl"))
    again = invoke(*base_args(truth_dir, out))
    assert again.exit_code == 0, again.output
    assert sorted((out / "shards").glob("*.jsonl")) == shards
    pd.testing.assert_frame_equal(pd.read_parquet(out / "completions.parquet"), table)

    other = invoke(*base_args(truth_dir, out)[:-2], "--seed", 4)
    assert other.exit_code == 2 and "belongs to a different collection (seed" in other.output


def test_a_killed_completion_run_resumes_without_lost_or_repeated_completions(truth_dir, tmp_path):
    reference = tmp_path / "reference"
    assert invoke(*base_args(truth_dir, reference)).exit_code == 0
    out = tmp_path / "run"
    args = [str(a) for a in base_args(truth_dir, out)] + ["--batch-size", "4", "--latency", "0.05"]
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "complete", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while len(list((out / "shards").glob("*.jsonl"))) < 5 and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    records = [
        json.loads(line)
        for path in (out / "shards").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert 20 <= len(records) < 96
    assert not (out / "completions.parquet").exists()

    result = invoke(*args[:-4])
    assert result.exit_code == 0, result.output
    records = [
        json.loads(line)
        for path in (out / "shards").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert len(records) == 96 and len({r["key"] for r in records}) == 96
    resumed = pd.read_parquet(out / "completions.parquet")
    pd.testing.assert_frame_equal(resumed, pd.read_parquet(reference / "completions.parquet"))


def test_bad_condition_and_inputs_are_one_line_errors(truth_dir, tmp_path):
    from bayespref.cli.app import app as full_app

    out = tmp_path / "run"
    result = runner.invoke(
        full_app,
        ["complete", "--engine", "simulated", "--truth", str(truth_dir), "--out", str(out),
         "--condition", "nameless"],
    )  # fmt: skip
    assert result.exit_code == 2 and "expected NAME=SYSTEM PROMPT" in result.output
    result = runner.invoke(full_app, ["complete", "--engine", "openai", "--out", str(out)])
    assert result.exit_code == 2 and "needs --tasks and --model" in result.output
