from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from bayespref.analysis.contrasts import utility_contrast
from bayespref.cli.app import app
from bayespref.errors import DataError


def utilities(mu: np.ndarray, sd: float, rng: np.random.Generator) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "task_id": [f"t{i}" for i in range(len(mu))],
            "dataset": ["d0", "d1"] * (len(mu) // 2),
            "mu_mean": mu + sd * rng.normal(size=len(mu)),
            "mu_sd": sd,
        }
    )


@pytest.mark.parametrize("rho", [-0.7, 0.2])
def test_the_correlation_interval_covers_the_truth_and_narrows_with_precision(rho):
    rng = np.random.default_rng(1)
    n = 60
    pre = rng.normal(size=n)
    post = rho * pre + np.sqrt(1 - rho**2) * rng.normal(size=n)
    summary, means = utility_contrast(utilities(pre, 0.2, rng), utilities(post, 0.2, rng))
    assert summary["n_tasks"] == n
    assert summary["pearson_low"] < rho < summary["pearson_high"]
    assert summary["pearson_low"] < summary["pearson"] < summary["pearson_high"]
    if abs(rho) > 0.5:  # near 0 the attenuation by noise also narrows the interval
        vague, _ = utility_contrast(utilities(pre, 1.0, rng), utilities(post, 1.0, rng))
        width = summary["pearson_high"] - summary["pearson_low"]
        assert vague["pearson_high"] - vague["pearson_low"] > width
    assert list(means["dataset"]) == ["d0", "d1"] and "difference" in means


def test_too_few_shared_tasks_is_an_error():
    rng = np.random.default_rng(0)
    a = utilities(np.zeros(4), 0.1, rng)
    b = a.assign(task_id=["x", "y", "t0", "t1"])
    with pytest.raises(DataError, match="only 2 tasks are in both fits"):
        utility_contrast(a, b)


def test_contrast_command_writes_correlation_dataset_means_and_position_terms(
    small_fit_dir, tmp_path
):
    out = tmp_path / "contrast"
    result = CliRunner().invoke(app, ["contrast", str(small_fit_dir), str(small_fit_dir),
                                      "--out", str(out), "--draws", "500"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "contrast.json").read_text())
    assert summary["pearson_of_means"] == pytest.approx(1.0)
    # one fit against itself: its posteriors are not independent, so the draws understate r
    assert summary["pearson_low"] <= summary["pearson"] <= summary["pearson_high"] < 1.0
    positions = pd.read_csv(out / "position.csv")
    assert positions["name"].eq("position_bias").all() and len(positions) == 2
    assert len(pd.read_csv(out / "dataset_means.csv")) > 0
