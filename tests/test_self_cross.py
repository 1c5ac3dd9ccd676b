"""End to end on the simulated engine: complete -> judge -> fit, recovering the self term."""

from __future__ import annotations

import pandas as pd
import pytest

import bayespref as bp
from bayespref.analysis.self_cross import fit_self_cross_pairwise, fit_self_cross_ratings
from bayespref.collect.complete import CompleteConfig, complete
from bayespref.collect.engines import EngineOptions
from bayespref.collect.engines.simulated import read_truth
from bayespref.collect.engines.simulated_authors import add_completion_truth
from bayespref.collect.judge import JudgeConfig, judge

AUTHORS = ("m1", "m2")
POSITION = -0.5
SELF = 0.8


def pipeline(root, self_preference, protocol, samples, shift=(), seed=2):
    """Completions of 8 tasks by two authors, judged by both as raters; the judged table."""
    simulation = bp.simulate(
        n_tasks=8,
        n_datasets=2,
        n_comparisons=10,
        dataset_sigma_sd=0.0,
        task_sigma_sd=0.0,
        condition_shifts=shift,
        seed=5,
    )
    bp.write_simulation(simulation, root / "truth")
    add_completion_truth(
        root / "truth",
        author_effects={"m1": 0.3, "m2": -0.3},
        self_preference=self_preference,
        post_task_position_bias=POSITION,
    )
    options = EngineOptions(truth=str(root / "truth"))
    conditions = (("default", ""), *((("condition_1", "You love helping."),) if shift else ()))
    tasks, _, _ = read_truth(root / "truth")
    done = complete(CompleteConfig("simulated", AUTHORS, conditions), tasks, root / "done", options)
    completions = pd.read_parquet(done.table)
    config = JudgeConfig("simulated", AUTHORS, protocol, samples=samples, seed=seed)
    judged = judge(config, completions, root / "judged", options)
    return pd.read_parquet(judged.table)


def term(terms, name, level=""):
    return terms[(terms["term"] == name) & (terms["level"] == level)].iloc[0]


@pytest.mark.parametrize("truth", [SELF, 0.0])
def test_pairwise_self_term_and_position_bias_are_recovered(tmp_path, truth):
    # Judging seed 100: across judging seeds 100-104 and 2 the null interval covered 0 five times
    # in six (seed 2: 0.017 to 0.38), as a 94% interval may.
    judged = pipeline(tmp_path, truth, "post-task-transcripts-revealed", samples=2, seed=100)
    assert len(judged) == 2 * 2 * (16 * 15 - 16)
    terms = fit_self_cross_pairwise(judged, draws=200, chains=2, seed=1)
    assert terms["r_hat"].max() < 1.05
    own = term(terms, "self")
    assert own["low"] < truth < own["high"]
    if truth:
        assert own["low"] > 0.2  # clearly away from zero, not just a wide interval
    else:
        assert own["high"] - own["low"] < 0.8
    # several more terms: within 3 posterior sd, so that one 94% miss does not fail the test
    for rater in AUTHORS:
        position = term(terms, "position", rater)
        assert abs(position["mean"] - POSITION) < 3 * position["sd"]
    m1 = term(terms, "author", "m1")
    assert abs(m1["mean"] - 0.3) < 3 * m1["sd"]


def test_ratings_self_term_and_condition_effect_are_recovered(tmp_path):
    judged = pipeline(tmp_path, SELF, "completion-rating-1-10", samples=3, shift=((2.0, 2.0),))
    assert set(judged["condition"]) == {"default", "condition_1"}
    terms = fit_self_cross_ratings(judged, draws=200, chains=2, seed=1)
    assert terms["r_hat"].max() < 1.05
    assert term(terms, "self")["low"] > 0  # the ordinal scale is not the truth's: sign only
    condition = term(terms, "condition", "condition_1")
    assert condition["low"] > 2 * term(terms, "self")["mean"] > 0  # shift 2 against self 0.8


def test_the_command_writes_the_terms(tmp_path):
    from typer.testing import CliRunner

    from bayespref.cli.app import app

    judged = pipeline(tmp_path, SELF, "post-task-transcripts-stated", samples=1)
    path = tmp_path / "judged.csv"
    judged.to_csv(path, index=False)
    args = ["self-cross", str(path), "--draws", "100", "--out", str(tmp_path / "t.csv")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    terms = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert {"self", "position", "author", "task"} == set(terms["term"])
    bad = CliRunner().invoke(app, ["self-cross", str(tmp_path / "truth" / "tasks.csv")])
    assert bad.exit_code == 2 and "column" in bad.output
