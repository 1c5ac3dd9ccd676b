from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtr

import bayespref as bp
from bayespref.posterior import draws as post


def test_predictions_match_a_direct_computation_from_draws(small_fit_dir):
    fit = bp.load_fit(small_fit_dir)
    pairs = pd.DataFrame(
        {"task_a": ["t00000", "t00003"], "task_b": ["t00001", "t00000"], "keep": [1, 2]}
    )
    predicted = bp.predict(fit, pairs)
    assert predicted["keep"].tolist() == [1, 2]
    index = {task: i for i, task in enumerate(fit.tasks["task_id"])}
    mu = post.draws(fit.posterior, "mu")
    sigma = post.task_sigma(fit.posterior, fit.tasks["dataset_idx"].to_numpy())
    bias, scope = post.position(fit.posterior)
    assert scope == "pair"  # the default: a term per ordered pair of datasets
    dataset = fit.tasks["dataset_idx"].to_numpy()
    for row in predicted.itertuples():
        i, j = index[row.task_a], index[row.task_b]
        term = bias[dataset[i], dataset[j]]
        p = ndtr((mu[i] - mu[j] + term) / np.hypot(sigma[i], sigma[j]))
        assert row.p_first_mean == pytest.approx(p.mean(), rel=1e-12)
        assert row.p_first_low == pytest.approx(np.quantile(p, 0.03), rel=1e-12)
        assert row.p_first_low <= row.p_first_mean <= row.p_first_high


def test_position_bias_enters_predictions(small_fit_dir):
    pairs = pd.DataFrame({"task_a": ["t00000", "t00001"], "task_b": ["t00001", "t00000"]})
    p = bp.predict(small_fit_dir, pairs)["p_first_mean"].to_numpy()
    # Both orders favour the first-shown task by the (positive) position bias: p + p' > 1.
    assert p[0] + p[1] > 1.05


def test_unseen_tasks_are_an_error_naming_them(small_fit_dir, tmp_path):
    path = tmp_path / "pairs.csv"
    path.write_text("task_a,task_b\nt00000,t00001\nnew_1,t00001\nt00002,new_2\n")
    with pytest.raises(
        bp.DataError,
        match=r"row 2 \(line 3\), column 'task_a': 2 tasks were not in the fit: new_1, new_2",
    ):
        bp.predict(small_fit_dir, path)


def test_a_new_pair_integrates_a_new_pair_effect_out(small_simulation):
    """P(first) for a new pair averages Phi over a fresh pair effect e ~ Normal(0, sd):
    Phi((mu_i - mu_j + beta) / sqrt(sigma_i^2 + sigma_j^2 + sd^2)) per draw."""
    from conftest import FAST

    fit = bp.fit(
        small_simulation.comparisons,
        small_simulation.tasks,
        model=bp.ModelSpec(position="global", overdispersion="pair-by-dataset"),
        settings=FAST,
        progressbar=False,
        log_likelihood=False,
    )
    pairs = pd.DataFrame({"task_a": ["t00000", "t00003"], "task_b": ["t00001", "t00000"]})
    predicted = bp.predict(fit, pairs)["p_first_mean"].to_numpy()
    index = {task: i for i, task in enumerate(fit.tasks["task_id"])}
    task_dataset = fit.tasks["dataset_idx"].to_numpy()
    mu = post.draws(fit.posterior, "mu")
    sigma = post.task_sigma(fit.posterior, task_dataset)
    pair_sd = post.draws(fit.posterior, "pair_sd_dataset")[task_dataset]
    bias = post.draws(fit.posterior, "position_bias")
    for row, (a, b) in enumerate(zip(pairs["task_a"], pairs["task_b"], strict=True)):
        i, j = index[a], index[b]
        scale = sigma[i] ** 2 + sigma[j] ** 2 + (pair_sd[i] ** 2 + pair_sd[j] ** 2) / 2
        assert predicted[row] == pytest.approx(ndtr((mu[i] - mu[j] + bias) / np.sqrt(scale)).mean())


def test_per_task_lapses_and_pair_sds_enter_predictions_by_their_two_tasks(small_simulation):
    """With lapse and pair-effect sd per task, a pair takes the mean of its tasks' lapse rates
    and the root mean square of their pair sds."""
    from conftest import FAST

    spec = bp.ModelSpec(position="global", overdispersion="pair-by-task", lapse="per-task")
    fit = bp.fit(
        small_simulation.comparisons,
        small_simulation.tasks,
        model=spec,
        settings=FAST,
        progressbar=False,
        log_likelihood=False,
    )
    pairs = pd.DataFrame({"task_a": ["t00000", "t00003"], "task_b": ["t00001", "t00000"]})
    predicted = bp.predict(fit, pairs)["p_first_mean"].to_numpy()
    index = {task: i for i, task in enumerate(fit.tasks["task_id"])}
    sigma = post.task_sigma(fit.posterior, fit.tasks["dataset_idx"].to_numpy())
    mu, bias = post.draws(fit.posterior, "mu"), post.draws(fit.posterior, "position_bias")
    pair_sd = post.draws(fit.posterior, "pair_sd_task")
    lapse = post.draws(fit.posterior, "lapse_task")
    for row, (a, b) in enumerate(zip(pairs["task_a"], pairs["task_b"], strict=True)):
        i, j = index[a], index[b]
        scale = sigma[i] ** 2 + sigma[j] ** 2 + (pair_sd[i] ** 2 + pair_sd[j] ** 2) / 2
        eps = (lapse[i] + lapse[j]) / 2
        p = eps / 2 + (1 - eps) * ndtr((mu[i] - mu[j] + bias) / np.sqrt(scale))
        assert predicted[row] == pytest.approx(p.mean())
    assert {"lapse_mean", "pair_sd_mean", "pair_sd_high"} <= set(fit.utilities.columns)
