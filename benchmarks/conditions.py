"""Condition shifts on a design shaped like real data with many system prompts: the `conditions`
model against separate maximum-likelihood fits per condition, on held-out (condition, pair)s.

Design (defaults): 60 tasks in 4 datasets, 13 conditions (the reference `default` and 12 shifted),
in each condition 900 of the 1,770 unordered pairs, each asked 5 times in one random order. The
truth is `simulate --preset realistic`'s at that size with the sizes it had when the table was
measured (TRUTH_SIZES: utilities, noise per dataset, position bias per dataset), an effect per pair
shared by its repeats (Normal(0, --pair-sd), added to the utility difference): nearly
deterministic choices. Each shifted condition moves about half the datasets (Normal(0,
--dataset-shift-sd) each) and about a fifth of the tasks (Normal(0, --task-shift-sd) each); a
pair's effect is drawn anew per condition.

For each seed the unordered (condition, pair)s are split 80/20; each model is fitted on the 80% at
default sampler settings (4 chains x 1,000 draws; with --trusted as `run.py`'s `trusted`) and
the reference MLE (`analysis/baselines.py`)
once per condition; held-out choice trials are scored as in benchmarks/real.py. `wall_s` is the
fit's wall time, `cpu_s` its processor time over all threads (steadier than wall time on shared
cores). Recovery: a
task's true shift in condition c is its utility there minus its reference utility, in the noise
unit a model without pair effects sees (each task's noise widened by the pair effects averaged
out: `marginal_noise_unit`); choices within a condition only see differences, so truth and
estimate are both centred over the tasks of each condition before comparing (`shift_corr`:
correlation of posterior means with the truth, `shift_slope`: least-squares slope of the means
on the truth, below 1 where the fit shrinks shifts towards zero; `shift_cover90`: share of true
shifts inside central 90% intervals). `n_steps` is the mean number
of leapfrog steps per draw, `step_size` the mean step size after tuning. `--label` names the
method column (e.g. to run the same script on two checkouts, with PYTHONPATH set to each).

Usage:
    python benchmarks/conditions.py [--seeds 0,1] [--models conditions,SPEC.toml,...]
        [--tasks 60 --datasets 4 --conditions 13 --pairs 900 --repeats 5 --pair-sd 3]
        [--label NAME] [--no-reference] [--out benchmarks/results/conditions.csv]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from heldout import split_pairs
from real import HELD_OUT, diagnostics_row, held_out_trials, scores
from run import TRUSTED

import bayespref as bp
from bayespref.analysis.baselines import fit_reference
from bayespref.io.atomic import write_atomically
from bayespref.model.choice import first_choice_probability
from bayespref.posterior import draws as post

RESULTS = Path(__file__).parent / "results"
SHIFTED_DATASETS = 0.5  # chance that a condition moves a dataset
SHIFTED_TASKS = 0.2  # chance that a condition moves a task (beyond its dataset)
# The realistic preset's sizes when results/conditions.csv was measured (the preset has since
# been refitted to beta-binomial fits of the real set): pinned so the table stays reproducible.
TRUTH_SIZES = {"task_sd": 7.0, "dataset_mean_sd": 7.0, "dataset_sigma_sd": 0.7}


def simulate_conditions(
    args: argparse.Namespace, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """Comparisons, tasks and the true utility shift per (condition, task) (row 0: zeros)."""
    preset = bp.SimulationConfig.realistic(args.tasks, args.datasets, seed=seed)
    base = bp.simulate(replace(preset, **TRUTH_SIZES))
    mu, sigma = base.truth["mu"].to_numpy(), base.truth["sigma"].to_numpy()
    dataset = base.truth["dataset"].to_numpy()
    dataset_idx = pd.Index(base.parameters["datasets"]).get_indexer(dataset)
    bias = np.asarray(base.parameters["position_bias_by_dataset"])
    rng = np.random.default_rng([seed, 8])
    n_tasks, n_conditions = len(mu), args.conditions
    moved = rng.random((n_conditions, args.datasets)) < SHIFTED_DATASETS
    by_dataset = moved * rng.normal(0.0, args.dataset_shift_sd, (n_conditions, args.datasets))
    moved = rng.random((n_conditions, n_tasks)) < SHIFTED_TASKS
    by_task = moved * rng.normal(0.0, args.task_shift_sd, (n_conditions, n_tasks))
    shift = by_dataset[:, dataset_idx] + by_task
    shift[0] = 0.0
    utility = mu[None, :] + shift
    pair_sd = args.pair_sd
    unit = marginal_noise_unit(sigma, pair_sd)

    low, high = np.triu_indices(n_tasks, 1)
    frames = []
    names = ["default"] + [f"condition_{c:02d}" for c in range(1, n_conditions)]
    for c, name in enumerate(names):
        chosen = rng.choice(len(low), size=args.pairs, replace=False)
        swap = rng.random(args.pairs) < 0.5
        first = np.where(swap, high[chosen], low[chosen])
        second = np.where(swap, low[chosen], high[chosen])
        effect = rng.normal(0.0, pair_sd, args.pairs)  # favours `first` as drawn
        advantage = utility[c, first] - utility[c, second] + effect
        advantage += (bias[dataset_idx[first]] + bias[dataset_idx[second]]) / 2
        z = advantage / np.hypot(sigma[first], sigma[second])
        p_first = np.repeat(first_choice_probability(z, "probit"), args.repeats)
        chose_first = rng.random(len(p_first)) < p_first
        a, b = np.repeat(first, args.repeats), np.repeat(second, args.repeats)
        frames.append(
            pd.DataFrame(
                {
                    "task_a": base.tasks["task_id"].to_numpy()[a],
                    "task_b": base.tasks["task_id"].to_numpy()[b],
                    "choice": np.where(chose_first, "a", "b"),
                    "dataset_a": dataset[a],
                    "dataset_b": dataset[b],
                    "condition": name,
                    "sample": np.tile(np.arange(args.repeats), args.pairs),
                }
            )
        )
    return pd.concat(frames, ignore_index=True), base.tasks, shift / unit


def marginal_noise_unit(sigma: np.ndarray, pair_sd: float) -> float:
    """The noise unit a model without pair effects measures the truth in.

    Averaged over a pair effect e ~ N(0, pair_sd), P(first) = Phi(d / sqrt(s_a^2 + s_b^2 +
    pair_sd^2)): each task's noise is in effect sqrt(s^2 + pair_sd^2 / 2), and the models fix the
    geometric mean of the dataset noise levels at 1 (the tasks' here: datasets are equal-sized).
    So a true shift x is x / unit in a fit's units: a beta-binomial cell's mean probability is
    this marginal one, up to the noise varying within a dataset, which per-dataset noise cannot
    hold. The MLE per condition is on its own scale, so its slope does not compare."""
    return float(np.exp(np.mean(np.log(np.sqrt(sigma**2 + pair_sd**2 / 2)))))


def _centred(values: np.ndarray) -> np.ndarray:
    """Shifts of the shifted conditions, centred over tasks: (condition - 1, task, ...)."""
    return values[1:] - values[1:].mean(axis=1, keepdims=True)


def recovery(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """`estimate`: (condition, task) point estimates or (condition, task, draws)."""
    truth = _centred(truth)
    estimate = _centred(estimate - estimate[:1])
    mean = estimate.mean(axis=2) if estimate.ndim == 3 else estimate
    row = {
        "shift_corr": float(np.corrcoef(mean.ravel(), truth.ravel())[0, 1]),
        "shift_slope": float(np.sum(mean * truth) / np.sum(truth**2)),
    }
    if estimate.ndim == 3:
        low, high = np.quantile(estimate, [0.05, 0.95], axis=2)
        row["shift_cover90"] = float(np.mean((low <= truth) & (truth <= high)))
    return row


def sampler_row(fit: bp.Fit) -> dict[str, float]:
    stats = fit.idata["sample_stats"]
    measures = fit.diagnostics.measures
    return {
        "mean_tree_depth": measures["mean_tree_depth"],
        "n_steps": float(stats["n_steps"].mean()),
        "step_size": float(stats["step_size"].mean()),
        "slowest_r_hat": measures["max_r_hat_parameter"],
        "draws_per_chain": fit.diagnostics.sampler["draws_per_chain"],
    }


def reference_rows(train: pd.DataFrame, test: pd.DataFrame, truth: np.ndarray) -> dict:
    """Separate MLE fits per condition: held-out P(first) and the shifts' recovery."""
    predicted = np.empty(len(test))
    started, cpu = time.perf_counter(), time.process_time()
    estimates = []
    for name in sorted(train["condition"].unique(), key=lambda c: (c != "default", c)):
        fitted = fit_reference(train[train["condition"] == name])
        rows = (test["condition"] == name).to_numpy()
        predicted[rows] = fitted.p_first(test.loc[rows, "task_a"], test.loc[rows, "task_b"])
        estimates.append(fitted.mu - fitted.mu.mean())  # the task ids are sorted, as in truth
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    estimates = np.array(estimates)
    return {"predicted": predicted, "wall_s": wall, "cpu_s": cpu, **recovery(estimates, truth)}


def sampler_settings(args: argparse.Namespace, seed: int) -> bp.SamplerSettings:
    """Default settings, or with --trusted `run.py`'s `trusted`: a Laplace warm start, short
    tuning and blocks of draws until the trust thresholds hold."""
    if not args.trusted:
        return bp.SamplerSettings(seed=seed)
    return bp.SamplerSettings(seed=seed, init="laplace", until_trusted=True, **TRUSTED)


def run(args: argparse.Namespace) -> pd.DataFrame:
    rows = []
    for seed in args.seeds:
        comparisons, tasks, truth = simulate_conditions(args, seed)
        train, test = split_pairs(comparisons, HELD_OUT, seed, by=("condition",))
        test, dropped = held_out_trials(train, test)
        chose_first = (test["choice"] == "a").to_numpy()
        common = {"seed": seed, "train_trials": len(train), "test_trials": len(test)}
        common |= {"dropped_trials": dropped, "unanimous": unanimous(comparisons)}
        common["pair_sd"] = args.pair_sd
        for name in args.models:
            started, cpu = time.perf_counter(), time.process_time()
            fit = bp.fit(
                train,
                tasks,
                model=name,
                settings=sampler_settings(args, seed),
                progressbar=False,
                log_likelihood=False,
            )
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            predicted = bp.predict(fit, test)["p_first_mean"].to_numpy()
            mu = post.draws(fit.posterior, "mu_condition")
            rows.append(
                {**common, "method": args.label or Path(name).stem}
                | scores(predicted, chose_first)
                | {"wall_s": wall, "cpu_s": cpu, **diagnostics_row(fit), **sampler_row(fit)}
                | recovery(mu, truth)
            )
            report(rows, args.out)
        if not args.reference:
            continue
        reference = reference_rows(train, test, truth)
        predicted = reference.pop("predicted")
        rows.append({**common, "method": "reference MLE per condition"} | reference)
        rows[-1] |= scores(predicted, chose_first)
        report(rows, args.out)
    return pd.DataFrame(rows)


def unanimous(comparisons: pd.DataFrame) -> float:
    """Share of (condition, pair)s whose repeats all chose the same task."""
    grouped = comparisons.groupby(["condition", "task_a", "task_b"])["choice"].nunique()
    return float((grouped == 1).mean())


def report(rows: list[dict], out: Path) -> None:
    frame = pd.DataFrame(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(out, frame.to_csv(index=False))
    print(frame.tail(1).to_string(index=False), flush=True)


def argument_parser() -> argparse.ArgumentParser:
    """The options, the design's sizes among them (their defaults are the design)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--seeds", type=lambda text: [int(v) for v in text.split(",")], default=[0, 1]
    )
    parser.add_argument("--models", type=lambda text: text.split(","), default=["conditions"])
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--datasets", type=int, default=4)
    parser.add_argument("--conditions", type=int, default=13)
    parser.add_argument("--pairs", type=int, default=900, help="unordered pairs per condition")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dataset-shift-sd", type=float, default=3.0)
    parser.add_argument("--task-shift-sd", type=float, default=3.0)
    parser.add_argument("--pair-sd", type=float, default=3.0, help="sd of the pair effects")
    parser.add_argument(
        "--trusted", action="store_true", help="fit as run.py's `trusted` (warm start, to target)"
    )
    parser.add_argument("--label", help="the method column of the models' rows")
    parser.add_argument("--reference", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--out", type=Path, default=RESULTS / "conditions.csv")
    return parser


def main() -> None:
    args = argument_parser().parse_args()
    results = run(args)
    columns = ["loglik", "brier", "accuracy", "wall_s", "cpu_s", "max_r_hat", "min_ess_bulk"]
    columns += ["divergences", "n_steps", "shift_corr", "shift_slope", "shift_cover90"]
    print(f"\nHeld-out (condition, pair)s (20%), seeds {args.seeds}")
    table = results.set_index(["seed", "method"])[[c for c in columns if c in results]]
    print(table.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
