from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayespref as bp
from bayespref.cli.app import app
from bayespref.collect.engines import EngineOptions, VllmSettings
from bayespref.collect.engines.simulated import SimulatedEngine
from bayespref.collect.plan import CollectConfig
from bayespref.collect.store import CollectError
from bayespref.io.locking import EMPTY_LOCK_GRACE_S
from bayespref.workflows import active
from bayespref.workflows.active import ActiveSettings, initial_degree, movement, run_active

CONFIG = CollectConfig(engine="simulated", model="simulator", seed=4)
SETTINGS = ActiveSettings(
    rounds=3,
    batch=4,
    settled_rank=None,
    sampler=bp.SamplerSettings(chains=1, draws=100, tune=100),
)


@pytest.fixture(scope="module")
def truth_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("active") / "truth"
    bp.write_simulation(bp.simulate(n_tasks=12, n_datasets=2, n_comparisons=30, seed=3), folder)
    return folder


@pytest.fixture(scope="module")
def tasks(truth_dir):
    return pd.read_csv(truth_dir / "tasks.csv")


# Never asked, round 0 included (t00000 and t00001 are neighbours in the seeded random cycle).
EXCLUDE = pd.DataFrame({"task_a": ["t00001", "t00003"], "task_b": ["t00000", "t00007"]})


def loop(truth_dir, tasks, out, settings=SETTINGS):
    options = EngineOptions(truth=str(truth_dir))
    return run_active(CONFIG, settings, tasks, out, options, batch_size=4, exclude=EXCLUDE)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, truth_dir, tasks):
    out = tmp_path_factory.mktemp("active") / "run"
    return loop(truth_dir, tasks, out)


def trials_of(out) -> pd.DataFrame:
    table = pd.read_parquet(out / "comparisons.parquet")
    return table.sort_values("key").reset_index(drop=True)


def stored_keys(out) -> list[str]:
    return [
        json.loads(line)["key"]
        for path in sorted(out.glob("round-*/trials/shards/*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_loop_writes_each_round_and_asks_new_pairs_in_both_orders(uninterrupted):
    out = uninterrupted.out
    assert uninterrupted.stopped == "budget" and [s.round for s in uninterrupted.rounds] == [
        0,
        1,
        2,
    ]
    assert initial_degree(4, 12) == 2
    trials = trials_of(out)
    # A 12-cycle less the excluded pair, then 4 pairs a round.
    assert list(trials.groupby("round").size()) == [22, 8, 8]
    assert [s.trials for s in uninterrupted.rounds] == [22, 30, 38]
    pair = trials[["task_a", "task_b"]].apply(lambda row: tuple(sorted(row)), axis=1)
    assert (pair.value_counts() == 2).all()  # each pair once, in both orders
    assert not {("t00000", "t00001"), ("t00003", "t00007")} & set(pair)
    assert set(zip(trials["task_a"], trials["task_b"], strict=True)) == set(
        zip(trials["task_b"], trials["task_a"], strict=True)
    )
    for round_ in range(3):
        folder = out / f"round-{round_:03d}"
        state = json.loads((folder / "state.json").read_text())
        assert state["round"] == round_ and (folder / "fit" / "posterior.nc").exists()
        assert len(pd.read_csv(folder / "pairs.csv")) == (22 if round_ == 0 else 8)
    assert uninterrupted.rounds[1].rank_corr is not None and not uninterrupted.rounds[1].settled
    assert len(stored_keys(out)) == len(set(stored_keys(out))) == 38


def test_loop_resumes_where_it_was_interrupted(uninterrupted, truth_dir, tasks, tmp_path):
    out = tmp_path / "run"
    generate = SimulatedEngine.generate
    calls = []

    def interrupted_generate(self, requests):
        calls.append(len(requests))
        if len(calls) == 8:  # round 0 takes 6 batches: stop in round 1's second batch
            raise KeyboardInterrupt
        return generate(self, requests)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SimulatedEngine, "generate", interrupted_generate)
        with pytest.raises(KeyboardInterrupt):
            loop(truth_dir, tasks, out)
    assert len(stored_keys(out)) == 26 and not (out / "round-001" / "state.json").exists()

    fit_round = active.fit_round
    fits = []

    def interrupted_fit(*args, **kwargs):
        fits.append(1)
        if len(fits) == 2:  # the fit of round 2
            raise KeyboardInterrupt
        return fit_round(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(active, "fit_round", interrupted_fit)
        with pytest.raises(KeyboardInterrupt):
            loop(truth_dir, tasks, out)
    assert (out / "round-002" / "trials" / "comparisons.parquet").exists()
    assert not (out / "round-002" / "fit").exists()
    (out / "round-002" / ".fit.partial-999999").mkdir()  # as a save killed half-way leaves

    result = loop(truth_dir, tasks, out)
    assert result.rounds == uninterrupted.rounds
    assert not (out / "round-002" / ".fit.partial-999999").exists()
    pd.testing.assert_frame_equal(trials_of(out), trials_of(uninterrupted.out))
    assert len(stored_keys(out)) == len(set(stored_keys(out))) == 38


def test_a_different_run_in_the_same_folder_is_refused(uninterrupted, truth_dir, tasks):
    settings = replace(SETTINGS, batch=5)
    with pytest.raises(CollectError, match="different active run \\(changed: batch\\)"):
        loop(truth_dir, tasks, uninterrupted.out, settings)


def test_stopping_criterion():
    before = pd.DataFrame({"mu_mean": [0.0, 1.0, 2.0], "mu_sd": [1.0, 1.0, 1.0]}, index=list("abc"))
    same_order = pd.DataFrame({"mu_mean": [2.1, 0.1, 1.1], "mu_sd": [0.99] * 3}, index=list("cab"))
    rank_corr, sd_drop = movement(before, same_order)
    assert rank_corr == pytest.approx(1.0) and sd_drop == pytest.approx(0.01)
    settings = ActiveSettings()
    assert settings.settled(rank_corr, sd_drop)
    assert not settings.settled(rank_corr, 0.05)  # uncertainty still falling
    assert not settings.settled(0.99, sd_drop)  # order still changing
    assert not ActiveSettings(settled_rank=None).settled(rank_corr, sd_drop)
    with pytest.raises(ValueError, match="rounds and batch must be positive"):
        ActiveSettings(batch=0)
    with pytest.raises(ValueError, match="unknown method 'vi'"):
        ActiveSettings(method="vi")
    with pytest.raises(ValueError, match="unknown strategy 'best'"):
        ActiveSettings(strategy="best")


def test_cli_active_run_and_rerun(truth_dir, tmp_path):
    runner = CliRunner()
    args = ["collect", "--engine", "simulated", "--truth", str(truth_dir), "--active"]
    args += ["--rounds", "1", "--batch", "3", "--out", str(tmp_path / "run")]
    result = runner.invoke(app, [*args, "--dry-run"])
    assert result.exit_code == 2 and "--dry-run does not apply" in result.output
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "round 0: 12 new pairs, 24 trials" in result.output
    assert "stopped (budget) after 1 rounds" in result.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0 and "round 0: 12 new pairs, 24 trials" in again.output


ENTRY = "from bayespref.cli.app import app; app()"


@pytest.mark.slow
def test_loop_killed_at_random_points_loses_and_repeats_no_trial(truth_dir, tmp_path):
    """Issue 8: 20 kills at random times (seeded), in collection, fitting and selection. A run
    that completes between kills is checked, and the next kills go to a fresh folder."""
    args = ["collect", "--engine", "simulated", "--truth", str(truth_dir), "--active"]
    args += ["--rounds", "8", "--batch", "4", "--latency", "0.2", "--batch-size", "3"]

    def command(out):
        return [sys.executable, "-c", ENTRY, *args, "--out", str(out)]

    whole = tmp_path / "whole"
    started = time.perf_counter()
    subprocess.run(command(whole), check=True, capture_output=True)
    longest = 2 + (time.perf_counter() - started) / 5
    rng = np.random.default_rng(8)
    kills, folders = 0, []
    while kills < 20:
        out = tmp_path / f"killed-{len(folders)}"
        folders.append(out)
        while kills < 20:
            process = subprocess.Popen(
                command(out), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            try:
                process.wait(timeout=rng.uniform(1, longest))
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                continue
            error = process.stderr.read().decode()
            if "is in use" in error:  # killed while writing its lock: stale after a grace period
                time.sleep(EMPTY_LOCK_GRACE_S + 1)
                continue
            assert process.returncode == 0, error
            break
    subprocess.run(command(folders[-1]), check=True, capture_output=True)
    for out in folders:
        pd.testing.assert_frame_equal(trials_of(out), trials_of(whole))
        assert len(stored_keys(out)) == len(set(stored_keys(out))) == len(trials_of(whole))


def test_an_active_vllm_run_leaves_the_sampler_what_vllm_leaves(tasks, tmp_path, monkeypatch):
    class Shared(Exception):
        pass

    def record(share):
        raise Shared(share)

    monkeypatch.setattr(active.device, "leave_gpu_to", record)
    config = CollectConfig(engine="vllm", model="google/gemma-3-27b-it", degree=2, seed=0)
    options = EngineOptions(vllm=VllmSettings(gpu_memory_utilization=0.6))
    with pytest.raises(Shared) as shared:
        run_active(config, SETTINGS, tasks, tmp_path / "run", options)
    assert shared.value.args == (0.6,)
