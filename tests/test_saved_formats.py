"""Folders written before the package moved into subpackages still load and resume.

`tests/fixtures/before_layout/` was written by the flat layout (commit e1ba674): a fit folder, and a
collect run killed after 3 of its 6 batches (its table removed, its manifest without status).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner
from typer.testing import Result as CliResult

import bayespref as bp
from bayespref.cli.app import app

BEFORE = Path(__file__).parent / "fixtures" / "before_layout"
RUN_ARGS = ["--degree", "3", "--samples", "2", "--seed", "4", "--batch-size", "12"]
# The run was asked at the pre-task template's budget of its day; the template's is 256 now.
BUDGET_THEN = ["--max-tokens", "32"]


def collect(out: Path, *extra: str) -> CliResult:
    args = ["collect", "--engine", "simulated", "--truth", str(BEFORE / "truth"), "--out", str(out)]
    return CliRunner().invoke(app, [*args, *RUN_ARGS, *extra])


def shard_records(out: Path) -> list[dict]:
    return [
        json.loads(line)
        for path in sorted((out / "shards").glob("*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def test_a_fit_folder_from_before_loads_and_predicts():
    fit = bp.load_fit(BEFORE / "fit")
    assert fit.spec.name == "hierarchical" and len(fit.tasks) == 12
    assert fit.diagnostics.data.n_trials == 200
    pairs = pd.DataFrame({"task_a": ["t00000", "t00003"], "task_b": ["t00001", "t00000"]})
    predicted = bp.predict(fit, pairs)
    assert np.all(predicted["p_first_low"] < predicted["p_first_mean"])
    assert np.all(predicted["p_first_mean"] < predicted["p_first_high"])


def test_a_collect_run_from_before_resumes_with_the_same_keys(tmp_path):
    out = tmp_path / "run"
    shutil.copytree(BEFORE / "collect_run", out)
    before = shard_records(out)
    manifest = json.loads((out / "manifest.json").read_text())
    config_hash = hashlib.sha256(json.dumps(manifest["config"], sort_keys=True).encode())
    assert config_hash.hexdigest()[:16] == "ab9e1aad18c42e1e"
    assert before[0]["key"] == "e1eca05de0a25b032d60ebce"

    refused = collect(out)  # at today's budget: other answers, so not the same collection
    assert refused.exit_code == 2 and "max_tokens: 32 there, 256 now" in refused.output
    assert shard_records(out) == before
    resumed_run = collect(out, *BUDGET_THEN)
    assert resumed_run.exit_code == 0, resumed_run.output
    records = shard_records(out)
    assert records[: len(before)] == before  # nothing asked again
    assert len(records) == 72 and len({r["key"] for r in records}) == 72
    fresh = tmp_path / "fresh"
    assert collect(fresh, *BUDGET_THEN).exit_code == 0
    resumed = pd.read_parquet(out / "comparisons.parquet")
    pd.testing.assert_frame_equal(resumed, pd.read_parquet(fresh / "comparisons.parquet"))
