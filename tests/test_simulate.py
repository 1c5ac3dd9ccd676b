from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import ndtri

import bayespref as bp
from bayespref.data.comparisons import read_comparisons


def unanimous_share(comparisons: pd.DataFrame) -> float:
    decided = comparisons[comparisons["choice"].isin(["a", "b"])]
    pair = np.sort(decided[["task_a", "task_b"]].to_numpy(), axis=1)
    winner = np.where(decided["choice"] == "a", decided["task_a"], decided["task_b"])
    frame = pd.DataFrame({"p0": pair[:, 0], "p1": pair[:, 1], "winner": winner})
    winners = frame.groupby(["p0", "p1"])["winner"].nunique()
    return float((winners == 1).mean())


def test_same_seed_same_data_and_other_seed_other_data():
    first = bp.simulate(n_tasks=30, n_comparisons=300, seed=4)
    again = bp.simulate(n_tasks=30, n_comparisons=300, seed=4)
    other = bp.simulate(n_tasks=30, n_comparisons=300, seed=5)
    pd.testing.assert_frame_equal(first.comparisons, again.comparisons)
    assert not first.comparisons["choice"].equals(other.comparisons["choice"])


def test_truth_follows_model_conventions():
    simulation = bp.simulate(n_tasks=100, n_datasets=4, n_comparisons=500, seed=2)
    truth = simulation.truth
    means = truth.groupby("dataset")["mu"].mean().to_numpy()
    np.testing.assert_allclose(means, simulation.parameters["dataset_mean"], atol=1e-12)
    assert abs(sum(simulation.parameters["dataset_mean"])) < 1e-12
    assert abs(np.sum(np.log(simulation.parameters["sigma_dataset"]))) < 1e-12


def test_orders_are_random_and_not_tied_to_ids():
    comparisons = bp.simulate(n_tasks=80, n_comparisons=2000, seed=3).comparisons
    lower_id_first = (comparisons["task_a"] < comparisons["task_b"]).mean()
    assert 0.45 < lower_id_first < 0.55


def test_position_bias_moves_first_position_win_rate():
    favoured = bp.simulate(n_tasks=100, n_comparisons=4000, position_bias=0.5, seed=1)
    neutral = bp.simulate(n_tasks=100, n_comparisons=4000, position_bias=0.0, seed=1)
    assert (favoured.comparisons["choice"] == "a").mean() > 0.56
    assert abs((neutral.comparisons["choice"] == "a").mean() - 0.5) < 0.03


def test_every_task_is_compared_and_graph_connected():
    simulation = bp.simulate(n_tasks=80, n_comparisons=80, seed=0)
    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    assert len(data.tasks) == 80 and not data.notes


def test_realistic_preset_matches_the_research_data():
    simulation = bp.simulate(bp.SimulationConfig.realistic(n_tasks=300, seed=0))
    comparisons = simulation.comparisons
    degree = (
        pd.concat([comparisons["task_a"], comparisons["task_b"]])
        .groupby(pd.concat([comparisons["task_a"], comparisons["task_b"]]))
        .size()
        / 5
    )
    assert 13 <= degree.mean() <= 17
    assert 0.83 <= unanimous_share(comparisons) <= 0.89
    decided = comparisons[comparisons["choice"].isin(["a", "b"])]
    first_won = decided["choice"] == "a"
    assert 0.42 <= first_won.mean() <= 0.58
    # position bias differs by dataset (real set: first-shown win rates 0.37-0.67 by dataset)
    assert first_won.groupby(decided["dataset_a"]).mean().std() > 0.05
    assert (comparisons["choice"] == "refusal").mean() < 0.01
    # every repeat of a pair in one order, as real runs ask them
    pair = np.sort(comparisons[["task_a", "task_b"]].to_numpy(), axis=1)
    shown_first = comparisons.groupby([pair[:, 0], pair[:, 1]])["task_a"].nunique()
    assert (shown_first == 1).all()


def test_refusals_correlate_with_utility():
    simulation = bp.simulate(
        n_tasks=200, n_comparisons=8000, refusal_rate=0.2, refusal_utility_corr=-0.7, seed=0
    )
    counts = bp.load_choice_data(simulation.comparisons).task_counts.merge(
        simulation.truth, on="task_id"
    )
    rate = counts["n_refusal"] / (counts["n_trials"] + counts["n_refusal"])
    assert np.corrcoef(rate, counts["mu"])[0, 1] < -0.4


def test_write_simulation_files_follow_the_contract(tmp_path):
    simulation = bp.simulate(n_tasks=20, n_comparisons=100, seed=0, refusal_rate=0.1)
    bp.write_simulation(simulation, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "comparisons.csv",
        "tasks.csv",
        "truth.csv",
        "truth.json",
    ]
    frame = read_comparisons(tmp_path / "comparisons.csv", tmp_path / "tasks.csv")
    assert len(frame) == 100
    truth = pd.read_csv(tmp_path / "truth.csv")
    assert list(truth.columns[:4]) == ["task_id", "dataset", "mu", "sigma"]
    assert json.loads((tmp_path / "truth.json").read_text())["position_bias"] == 0.3


def test_impossible_designs_are_refused():
    with pytest.raises(ValueError, match="need more distinct pairs"):
        bp.SimulationConfig(n_tasks=5, n_comparisons=100)
    with pytest.raises(ValueError, match="n_tasks"):
        bp.SimulationConfig(n_tasks=1)


def test_task_lapse_rates_vary_around_the_lapse_rate_and_default_truths_keep_one():
    plain = bp.simulate(n_tasks=40, n_comparisons=300, lapse_rate=0.1, seed=2)
    assert (plain.truth["lapse"] == 0.1).all()
    varied = bp.simulate(n_tasks=400, n_comparisons=300, lapse_rate=0.1, task_lapse_sd=1.0, seed=2)
    logit_lapse = np.log(varied.truth["lapse"] / (1 - varied.truth["lapse"]))
    assert logit_lapse.median() == pytest.approx(np.log(0.1 / 0.9), abs=0.15)
    assert logit_lapse.std() == pytest.approx(1.0, abs=0.1)
    # the extra draws come last: everything else is as without per-task rates
    same = bp.simulate(n_tasks=400, n_comparisons=300, lapse_rate=0.1, seed=2)
    assert varied.truth["mu"].equals(same.truth["mu"])
    with pytest.raises(ValueError, match="task_lapse_sd"):
        bp.SimulationConfig(task_lapse_sd=1.0)


def test_pair_effects_are_in_each_pairs_noise_units():
    """A pair's effect moves its probit by the same sd in a noisy dataset as in a calm one, so
    repeats agree beyond their trial noise alike everywhere (as on the real set)."""
    config = bp.SimulationConfig(
        n_tasks=200,
        n_datasets=2,
        n_comparisons=8000,
        position_bias=0.0,
        seed=3,
        dataset_sigma_sd=1.5,
        task_sigma_sd=0.0,
        pair_sd=2.0,
        task_sd=0.2,  # small utilities keep every P(first) away from 0 and 1
        dataset_mean_sd=0.2,
    )
    simulation = bp.simulate(config)
    truth = simulation.truth.set_index("task_id")
    comparisons = simulation.comparisons
    a, b = truth.loc[comparisons["task_a"]], truth.loc[comparisons["task_b"]]
    scale = np.hypot(a["sigma"].to_numpy(), b["sigma"].to_numpy())
    effect = (
        ndtri(comparisons["p_a"].to_numpy()) - (a["mu"].to_numpy() - b["mu"].to_numpy()) / scale
    )
    sigma = np.asarray(simulation.parameters["sigma_dataset"])
    assert sigma.max() / sigma.min() > 2  # the datasets' noise differs
    within = comparisons["dataset_a"].to_numpy() == comparisons["dataset_b"].to_numpy()
    for dataset in ("dataset_0", "dataset_1"):
        rows = within & (comparisons["dataset_a"] == dataset).to_numpy()
        assert np.std(effect[rows]) == pytest.approx(2.0 / np.sqrt(2), rel=0.1)


def _true_distances(simulation: bp.Simulation) -> np.ndarray:
    """|mu_a - mu_b| / sqrt(s_a^2 + s_b^2) of each distinct compared pair, at the truth."""
    truth = simulation.truth.set_index("task_id")
    pairs = simulation.comparisons.drop_duplicates(["task_a", "task_b"])
    a, b = truth.loc[pairs["task_a"]], truth.loc[pairs["task_b"]]
    return np.abs(a["mu"].to_numpy() - b["mu"].to_numpy()) / np.hypot(
        a["sigma"].to_numpy(), b["sigma"].to_numpy()
    )


def test_close_pairs_are_distinct_closer_and_leave_every_task_compared():
    config = dict(n_tasks=120, n_datasets=3, n_comparisons=2400, repeats=5, task_sd=3.0, seed=2)
    random = bp.simulate(**config)
    close = bp.simulate(**config, close_pairs=0.5)
    pairs = np.sort(close.comparisons[["task_a", "task_b"]].to_numpy(str), axis=1)
    assert len({tuple(pair) for pair in pairs}) == 2400 // 5  # as many distinct pairs, 5 times
    assert np.median(_true_distances(close)) < 0.6 * np.median(_true_distances(random))
    data = bp.load_choice_data(close.comparisons, close.tasks)
    assert len(data.tasks) == 120 and not data.notes  # connected, every task compared
    # The close pairs come from a stream of their own: the truth is the same draw.
    pd.testing.assert_frame_equal(close.truth, random.truth)
    with pytest.raises(ValueError, match="close_pairs"):
        bp.SimulationConfig(close_pairs=1.0)
