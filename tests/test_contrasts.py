from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from bayespref.analysis.contrasts import position_contrast, utility_contrast
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


def protocol(first_wins: list[int], trials: list[int], bias: np.ndarray | None):
    """A stand-in fit with the two things a position contrast reads: cells and a posterior."""
    variables = {} if bias is None else {"position_bias": (("chain", "draw"), bias)}
    return SimpleNamespace(
        cells=pd.DataFrame({"k": first_wins, "n": trials}), posterior=xr.Dataset(variables)
    )


def test_position_contrast_gives_observed_rates_and_the_difference_of_independent_terms():
    rng = np.random.default_rng(2)
    pre = protocol([3, 5], [10, 10], rng.normal(0.3, 0.05, size=(4, 1000)))
    post = protocol([1, 2, 4], [5, 5, 5], rng.normal(-0.2, 0.05, size=(2, 500)))
    summary = position_contrast(pre, post, seed=0)
    assert summary["first_shown_win_rate_first"] == pytest.approx(8 / 20)
    assert summary["first_shown_win_rate_second"] == pytest.approx(7 / 15)
    assert summary["position_difference"] == pytest.approx(-0.5, abs=0.01)
    # independent draws: the difference's sd is sqrt(2) x 0.05, its 94% interval +-1.88 sd wide
    width = summary["position_difference_high"] - summary["position_difference_low"]
    assert width == pytest.approx(2 * 1.881 * 0.05 * np.sqrt(2), rel=0.1)
    unbiased = position_contrast(pre, protocol([1], [2], None))
    assert "position_difference" not in unbiased
    assert unbiased["first_shown_win_rate_second"] == 0.5


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
    assert summary["first_shown_win_rate_first"] == summary["first_shown_win_rate_second"]
    assert summary["position_difference_low"] < 0 < summary["position_difference_high"]
    positions = pd.read_csv(out / "position.csv")
    # the default model: a global term, one per dataset and one per ordered pair, for each fit
    datasets = ["dataset_0", "dataset_1"]
    terms = ["position_bias"] + [f"position_bias_dataset[{d}]" for d in datasets]
    terms += [f"position_bias_pair[{d}, {e}]" for d in datasets for e in datasets]
    assert (
        list(positions["name"]) == terms * 2
        and list(positions["fit"]) == ["first"] * 7 + ["second"] * 7
    )
    assert len(pd.read_csv(out / "dataset_means.csv")) > 0
