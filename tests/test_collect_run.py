from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import bayespref as bp
from bayespref.cli.app import guarded
from bayespref.cli.collect import collect_command
from bayespref.data.comparisons import read_comparisons

app = typer.Typer()
app.command()(guarded(collect_command))  # through the one error path, as registered
runner = CliRunner()
ENTRY = (
    "import typer; from bayespref.cli.collect import collect_command; typer.run(collect_command)"
)


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def truth_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sim") / "truth"
    simulation = bp.simulate(
        n_tasks=30, n_datasets=3, n_comparisons=50, refusal_rate=0.03, unparsed_rate=0.02, seed=2
    )
    bp.write_simulation(simulation, folder)
    return folder


def trials_of(out) -> pd.DataFrame:
    table = pd.read_parquet(out / "comparisons.parquet")
    return table.sort_values("key").reset_index(drop=True)


def shard_records(out) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((out / "shards").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_simulated_collection_writes_the_contract_and_a_manifest(truth_dir, tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "--engine",
        "simulated",
        "--truth",
        truth_dir,
        "--out",
        out,
        "--degree",
        4,
        "--samples",
        2,
        "--seed",
        9,
        "--batch-size",
        100,
    )
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "comparisons.parquet")
    checked = read_comparisons(out / "comparisons.parquet", truth_dir / "tasks.csv")
    assert len(checked) == len(table)
    pairs = table.groupby(["task_a", "task_b"]).size()
    assert (pairs == 2).all()
    assert all((b, a) in pairs.index for a, b in pairs.index)
    assert table["key"].is_unique and set(table["sample"]) == {0, 1}
    assert set(table["choice"]) == {"a", "b", "refusal", "unparsed"}
    assert table["protocol"].eq("pre-task-revealed").all()
    assert table["template"].eq("pre-task-revealed@v1").all()
    assert table["model"].str.match(r"simulator:[0-9a-f]{12}$").all()
    decided = table[table["choice"].isin(["a", "b"])]
    assert (decided["raw_response"].str[5] == decided["choice"].str.upper()).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["degree"] == 4 and manifest["config"]["samples"] == 2
    assert manifest["config"]["template"] == "pre-task-revealed@v1"
    assert manifest["config"]["tasks"]["n"] == 30 and manifest["config"]["max_tokens"] == 256
    assert manifest["status"]["complete"] is True
    assert manifest["status"]["planned"] == manifest["status"]["completed"] == len(table)
    assert not (out / ".lock").exists()

    shards = sorted((out / "shards").glob("*.jsonl"))
    again = invoke(
        "--engine",
        "simulated",
        "--truth",
        truth_dir,
        "--out",
        out,
        "--degree",
        4,
        "--samples",
        2,
        "--seed",
        9,
    )
    assert again.exit_code == 0, again.output
    assert sorted((out / "shards").glob("*.jsonl")) == shards
    pd.testing.assert_frame_equal(pd.read_parquet(out / "comparisons.parquet"), table)


def test_dry_run_prints_the_count_and_an_example_prompt(truth_dir, tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "--engine",
        "simulated",
        "--truth",
        truth_dir,
        "--out",
        out,
        "--dry-run",
        "--system-prompt",
        "You are a careful assistant.",
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "870 prompts (0 already answered, 870 to ask)"
    assert lines[1].startswith("example prompt (t") and lines[1].endswith(", sample 0):")
    assert lines[2:4] == ["--- system ---", "You are a careful assistant."]
    assert lines[4:7] == [
        "--- user ---",
        "You will be given two tasks. Choose one of them and complete it.",
        "",
    ]
    assert "Simulated task" in result.output and not out.exists()


def test_a_killed_run_resumes_without_lost_or_repeated_trials(truth_dir, tmp_path):
    reference = tmp_path / "reference"
    assert invoke("--engine", "simulated", "--truth", truth_dir, "--out", reference).exit_code == 0

    out = tmp_path / "run"
    args = [
        "--engine",
        "simulated",
        "--truth",
        str(truth_dir),
        "--out",
        str(out),
        "--batch-size",
        "20",
        "--latency",
        "0.05",
    ]
    process = subprocess.Popen(
        [sys.executable, "-c", ENTRY, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while len(list((out / "shards").glob("*.jsonl"))) < 5 and time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    answered = len(shard_records(out))
    assert 100 <= answered < 870
    assert not (out / "comparisons.parquet").exists()
    assert json.loads((out / ".lock").read_text())["pid"] == process.pid  # left behind, stale

    result = invoke(*args[:-2])
    assert result.exit_code == 0, result.output
    records = shard_records(out)
    assert len(records) == 870 and len({r["key"] for r in records}) == 870
    resumed, whole = trials_of(out), trials_of(reference)
    assert len(resumed) == 870 and resumed["key"].is_unique
    pd.testing.assert_frame_equal(resumed, whole)


def test_a_second_process_on_the_same_folder_is_refused(truth_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(["sleep", "30"])
    try:
        (out / ".lock").write_text(json.dumps({"pid": holder.pid, "host": os.uname().nodename}))
        result = invoke("--engine", "simulated", "--truth", truth_dir, "--out", out)
        assert result.exit_code == 2
        assert f"is in use by process {holder.pid}" in result.output
    finally:
        holder.kill()
        holder.wait()
    result = invoke("--engine", "simulated", "--truth", truth_dir, "--out", out)
    assert result.exit_code == 0, result.output
    assert not (out / ".lock").exists()


def test_a_different_configuration_in_the_same_folder_is_an_error(truth_dir, tmp_path):
    out = tmp_path / "run"
    assert (
        invoke(
            "--engine",
            "simulated",
            "--truth",
            truth_dir,
            "--out",
            out,
            "--degree",
            3,
            "--batch-size",
            500,
        ).exit_code
        == 0
    )
    before = shard_records(out)
    result = invoke(
        "--engine",
        "simulated",
        "--truth",
        truth_dir,
        "--out",
        out,
        "--degree",
        3,
        "--temperature",
        0.5,
    )
    assert result.exit_code == 2
    assert "belongs to a different collection (temperature: 1.0 there, 0.5 now)" in result.output
    assert shard_records(out) == before


def test_stated_ratings_protocol_writes_the_ratings_contract(truth_dir, tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "--engine",
        "simulated",
        "--truth",
        truth_dir,
        "--out",
        out,
        "--protocol",
        "stated-rating-1-5-banned",
        "--samples",
        3,
    )
    assert result.exit_code == 0, result.output
    ratings = pd.read_parquet(out / "ratings.parquet")
    assert len(ratings) == 90 and ratings.groupby("task_id").size().eq(3).all()
    assert set(ratings["rating"]) <= {1.0, 2.0, 3.0, 5.0}
    assert ratings["scale"].eq("1-5 without 4").all()
    assert {"task_id", "rating", "scale", "sample", "condition", "raw_response"} <= set(ratings)
    truth = pd.read_csv(truth_dir / "truth.csv").set_index("task_id")["mu"]
    mean = ratings.groupby("task_id")["rating"].mean()
    assert np.corrcoef(mean, truth.reindex(mean.index))[0, 1] > 0.7
    bad = invoke(
        "--engine",
        "simulated",
        "--truth",
        truth_dir,
        "--out",
        tmp_path / "other",
        "--protocol",
        "stated-rating-1-10",
        "--degree",
        3,
    )
    assert bad.exit_code == 2 and "--degree applies to choice protocols" in bad.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--engine", "simulated", "--tasks", "shipped"], "takes --truth SIMDIR instead"),
        (["--engine", "openai", "--tasks", "shipped"], "needs --tasks and --model"),
        (["--engine", "gpt", "--tasks", "shipped", "--model", "m"], "unknown engine 'gpt'"),
        (["--engine", "simulated", "--truth", "nowhere"], "not a simulation folder"),
        (
            ["--engine", "openai", "--tasks", "shipped", "--model", "m", "--protocol", "x"],
            "unknown protocol 'x'",
        ),
    ],
)
def test_bad_arguments_exit_2_with_a_message(tmp_path, args, message):
    result = invoke(*args, "--out", tmp_path / "run")
    assert result.exit_code == 2
    assert message in result.output


def test_simulated_collection_then_fit_recovers_the_true_utilities(tmp_path):
    simulation = bp.simulate(n_tasks=60, n_datasets=3, n_comparisons=10, position_bias=0.3, seed=21)
    truth_dir = bp.write_simulation(simulation, tmp_path / "truth")
    out = tmp_path / "run"
    result = invoke(
        "--engine",
        "simulated",
        "--truth",
        truth_dir,
        "--out",
        out,
        "--degree",
        30,
        "--batch-size",
        1000,
    )
    assert result.exit_code == 0, result.output
    comparisons = pd.read_parquet(out / "comparisons.parquet")
    assert len(comparisons) > 2000
    fit = bp.fit(
        out / "comparisons.parquet",
        truth_dir / "tasks.csv",
        settings=bp.SamplerSettings(chains=2, draws=300, tune=300, seed=1),
        progressbar=False,
    )
    merged = fit.utilities.merge(simulation.truth, on="task_id")
    assert np.corrcoef(merged["mu_mean"], merged["mu"])[0, 1] >= 0.95
    position = fit.params.set_index("name").loc["position_bias", "mean"]
    assert position == pytest.approx(0.3, abs=0.12)


def test_twenty_random_kills_lose_and_repeat_nothing(truth_dir, tmp_path):
    reference = tmp_path / "reference"
    assert invoke("--engine", "simulated", "--truth", truth_dir, "--out", reference).exit_code == 0
    out = tmp_path / "run"
    args = ["--engine", "simulated", "--truth", str(truth_dir), "--out", str(out)]
    slow = ["--batch-size", "20", "--latency", "0.05"]
    rng = np.random.default_rng(0)
    kills = 0
    while kills < 20:
        before = len(list((out / "shards").glob("*.jsonl")))
        target = before + int(rng.integers(1, 3))
        process = subprocess.Popen(
            [sys.executable, "-c", ENTRY, *args, *slow],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while len(list((out / "shards").glob("*.jsonl"))) < target and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(float(rng.uniform(0.0, 0.02)))
        if process.poll() is not None:  # finished before this kill point: nothing left to kill
            break
        process.send_signal(signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills == 20
    assert invoke(*args).exit_code == 0
    records = shard_records(out)
    assert len(records) == 870 and len({r["key"] for r in records}) == 870
    pd.testing.assert_frame_equal(trials_of(out), trials_of(reference))


def test_a_folder_written_before_a_setting_existed_resumes_at_its_default(truth_dir, tmp_path):
    out = tmp_path / "run"
    args = ("--engine", "simulated", "--truth", truth_dir, "--degree", "2", "--out", out)
    assert invoke(*args).exit_code == 0
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["config"]["max_answer_chars"]  # as an older version wrote it
    (out / "manifest.json").write_text(json.dumps(manifest))
    assert invoke(*args).exit_code == 0
    changed = invoke(*args, "--max-answer-chars", "50")
    assert changed.exit_code == 2 and "max_answer_chars: 100000 there, 50 now" in changed.output
