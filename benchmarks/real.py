"""Real LLM choices: held-out prediction of the named models and the reference MLE, and the
statistics that make real data hard, side by side with `bayespref simulate --preset realistic`.

For each seed, split the unordered pairs 80/20, fit each model on the 80% at default sampler
settings (4 chains x 1000 draws) and score the held-out trials:
  loglik       mean over trials of log P(observed choice), P averaged over posterior draws
               (plug-in for the MLE)
  brier        mean squared error of P(first chosen)
  accuracy     share of trials whose more probable side was chosen (ties count half)
  calibration  mean |observed - predicted| over 10 equal-count bins of predicted P, weighted
               by trials (reliability)
with the wall time and the fit's own diagnostics verdict. Refusals: held-out refusal trials are
not scored (0.3% of the real trials; only `refusal` and `full` predict them); in training each
model reads them as its spec says (excluded, modelled or second-task wins) and the MLE counts
them as second-task wins, as the reference method did. Held-out pairs with a task absent from
the training split are dropped (counted in `dropped_trials`).

Usage:
    python benchmarks/real.py [--comparisons PATH] [--seeds 0,1] [--models hierarchical,...]
                              [--draws 1000] [--target-accept 0.9] [--until-trusted]
                              [--save-fits DIR] [--statistics-model NAME]
                              [--preset-sizes '{"close_pairs": 0.5, ...}']
                              [--out benchmarks/results/real.csv] [--prior sigma_spread_sd=0.1 ...]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from heldout import score, split_pairs

import bayespref as bp
from bayespref.analysis.baselines import fit_reference
from bayespref.model.spec import DEFAULT_MODEL, available_models
from bayespref.model.structure import PRIORS
from bayespref.posterior import draws as post

REAL = Path(__file__).resolve().parents[2] / "shared/real/gemma3_27b_persona_500/comparisons.csv"
RESULTS = Path(__file__).parent / "results"
HELD_OUT = 0.2


def _seeds(text: str) -> list[int]:
    return [int(value) for value in text.split(",")]


def _choices(comparisons: pd.DataFrame) -> pd.DataFrame:
    return comparisons[comparisons["choice"].isin(["a", "b"])].reset_index(drop=True)


def accuracy(p_first: np.ndarray, chose_first: np.ndarray) -> float:
    hit = np.where(p_first == 0.5, 0.5, (p_first > 0.5) == chose_first)
    return float(np.mean(hit))


def scores(p_first: np.ndarray, chose_first: np.ndarray) -> dict[str, float]:
    measured = score(p_first, chose_first)
    return {
        "loglik": measured["loglik"],
        "brier": measured["brier"],
        "accuracy": accuracy(p_first, chose_first),
        "calibration": measured["ece"],
    }


def held_out_trials(train: pd.DataFrame, test: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """Scored held-out trials (choices between tasks seen in training) and how many were dropped."""
    seen = set(train["task_a"]) | set(train["task_b"])
    choices = _choices(test)
    kept = choices[choices["task_a"].isin(seen) & choices["task_b"].isin(seen)]
    return kept.reset_index(drop=True), len(choices) - len(kept)


def unanimous_share(comparisons: pd.DataFrame) -> float:
    """Share of unordered pairs with at least two choices in which every choice picked the same
    task (whatever the order shown)."""
    choices = _choices(comparisons)
    winner = np.where(choices["choice"] == "a", choices["task_a"], choices["task_b"])
    pair = np.sort(choices[["task_a", "task_b"]].to_numpy(), axis=1)
    frame = pd.DataFrame({"x": pair[:, 0], "y": pair[:, 1], "winner": winner})
    grouped = frame.groupby(["x", "y"])["winner"].agg(n="size", distinct="nunique")
    repeated = grouped[grouped["n"] >= 2]
    return float((repeated["distinct"] == 1).mean())


def first_win_rates(comparisons: pd.DataFrame) -> pd.DataFrame:
    """First-shown win rate per dataset of the first-shown task: over all its pairs, and within
    its own dataset (where utilities of the two sides come from one distribution)."""
    choices = _choices(comparisons).assign(first=lambda c: c["choice"] == "a")
    within = choices[choices["dataset_a"] == choices["dataset_b"]]
    return pd.DataFrame(
        {
            "all_pairs": choices.groupby("dataset_a")["first"].mean(),
            "within_dataset": within.groupby("dataset_a")["first"].mean(),
        }
    )


def _task_means(fit: bp.Fit) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means of each task's utility and noise."""
    mu = post.draws(fit.posterior, "mu").mean(axis=1)
    sigma = post.task_sigma(fit.posterior, fit.tasks["dataset_idx"].to_numpy()).mean(axis=1)
    return mu, sigma


def utility_spread(fit: bp.Fit) -> dict[str, float]:
    """Spread of utilities in noise units, and the spread of noise between datasets."""
    mu, sigma = _task_means(fit)
    by_dataset = pd.Series(mu).groupby(fit.tasks["dataset_idx"].to_numpy()).std()
    return {
        "utility sd (noise units)": float(mu.std()),
        "within-dataset utility sd, mean": float(by_dataset.mean()),
        "dataset mean utility sd": float(pd.Series(mu).groupby(fit.tasks["dataset"]).mean().std()),
        "sd of log noise between datasets": float(
            pd.Series(np.log(sigma)).groupby(fit.tasks["dataset"]).mean().std()
        ),
    }


def pair_closeness(fit: bp.Fit, seed: int = 0) -> dict[str, float]:
    """How close in utility the compared pairs are, against random pairs of the same tasks:
    median |z| = |mu_a - mu_b| / sqrt(s_a^2 + s_b^2) at the posterior means. A design that picks
    close pairs (as active selection does) makes new pairs harder to predict."""
    mu, sigma = _task_means(fit)

    def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.abs(mu[a] - mu[b]) / np.hypot(sigma[a], sigma[b])

    cells = fit.cells.drop_duplicates(["a_idx", "b_idx"])
    a, b = np.random.default_rng(seed).integers(0, len(mu), (2, 200_000))
    random = distance(a[a != b], b[a != b])
    return {
        "compared pairs, median |z|": float(np.median(distance(cells["a_idx"], cells["b_idx"]))),
        "random pairs of the same tasks, median |z|": float(np.median(random)),
    }


def hard_statistics(comparisons: pd.DataFrame, fit: bp.Fit | None) -> dict[str, float]:
    rates = first_win_rates(comparisons)
    stats = {
        "trials": float(len(comparisons)),
        "unanimous share of repeated pairs": unanimous_share(comparisons),
        "first-shown win rate": float((_choices(comparisons)["choice"] == "a").mean()),
        "first win rate within dataset, min": float(rates["within_dataset"].min()),
        "first win rate within dataset, max": float(rates["within_dataset"].max()),
        "first win rate by first dataset, sd": float(rates["all_pairs"].std()),
        "refusal share": float((comparisons["choice"] == "refusal").mean()),
    }
    if fit is not None:
        stats |= utility_spread(fit) | pair_closeness(fit)
    return stats


def diagnostics_row(fit: bp.Fit) -> dict:
    diagnostics = fit.diagnostics.to_dict()
    return {
        "passed": diagnostics["passed"],
        "max_r_hat": diagnostics["max_r_hat"],
        "min_ess_bulk": diagnostics["min_ess_bulk"],
        "worst": diagnostics["min_ess_bulk_parameter"],
        "divergences": diagnostics["divergences"],
    }


def position_rows(test: pd.DataFrame, p_first: np.ndarray, label: str, seed: int) -> list[dict]:
    """Observed against predicted held-out first-shown win rate per dataset of the first-shown
    task, over all its pairs (`dataset_b` is `all`) and within its own dataset, and per ordered
    dataset pair."""
    frame = test.assign(observed=(test["choice"] == "a").astype(float), predicted=p_first)
    rows = []
    for scope, part, by in (
        ("all_pairs", frame.assign(dataset_b="all"), ["dataset_a", "dataset_b"]),
        ("within_dataset", frame[frame["dataset_a"] == frame["dataset_b"]], ["dataset_a"]),
        ("ordered_pair", frame, ["dataset_a", "dataset_b"]),
    ):
        grouped = part.groupby(by)[["observed", "predicted"]].agg(["mean", "size"])
        for key, values in grouped.iterrows():
            first, second = (key, key) if len(by) == 1 else key
            rows.append(
                {
                    "seed": seed,
                    "method": label,
                    "scope": scope,
                    "dataset_a": first,
                    "dataset_b": second,
                    "trials": int(values[("observed", "size")]),
                    "observed": values[("observed", "mean")],
                    "predicted": values[("predicted", "mean")],
                }
            )
    return rows


def run(args: argparse.Namespace) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    comparisons = bp.read_comparisons(args.comparisons)
    rows, positions, statistics = [], [], {}
    for seed in args.seeds:
        train, test = split_pairs(comparisons, HELD_OUT, seed)
        test, dropped = held_out_trials(train, test)
        chose_first = (test["choice"] == "a").to_numpy()
        common = {"seed": seed, "train_trials": len(train), "test_trials": len(test)}
        common["dropped_trials"] = dropped
        for name in args.models:
            label = Path(name).stem
            started = time.perf_counter()
            fit = bp.fit(
                train,
                model=name,
                settings=bp.SamplerSettings(
                    draws=args.draws,
                    tune=args.draws,
                    seed=seed,
                    target_accept=args.target_accept,
                    until_trusted=args.until_trusted,
                    max_draws=5 * args.draws,
                ),
                progressbar=False,
                out=args.save_fits / f"seed{seed}" / label if args.save_fits else None,
                force=True,
            )
            wall = time.perf_counter() - started
            predicted = bp.predict(fit, test)["p_first_mean"].to_numpy()
            rows.append(
                {**common, "method": label, **scores(predicted, chose_first), "wall_s": wall}
                | diagnostics_row(fit)
            )
            positions += position_rows(test, predicted, label, seed)
            print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_csv(args.out, index=False)  # so far, in case of a stop
            if name == args.statistics_model and seed == args.seeds[0] and args.statistics:
                statistics["real"] = hard_statistics(comparisons, fit)
        started = time.perf_counter()
        reference = fit_reference(train)
        wall = time.perf_counter() - started
        predicted = reference.p_first(test["task_a"], test["task_b"])
        rows.append(
            {**common, "method": "reference MLE", **scores(predicted, chose_first), "wall_s": wall}
        )
        positions += position_rows(test, predicted, "reference MLE", seed)
    if not args.statistics:
        return pd.DataFrame(rows), pd.DataFrame(positions), pd.DataFrame()
    if "real" not in statistics:
        statistics["real"] = hard_statistics(comparisons, statistics_fit(comparisons, args))
    statistics["preset realistic"] = hard_statistics(*preset_data(comparisons, args))
    return pd.DataFrame(rows), pd.DataFrame(positions), pd.DataFrame(statistics)


def statistics_fit(comparisons: pd.DataFrame, args: argparse.Namespace) -> bp.Fit:
    """The statistics' model (the default unless --statistics-model) fitted to the first seed's
    80% share of the pairs."""
    train, _ = split_pairs(comparisons, HELD_OUT, args.seeds[0])
    settings = bp.SamplerSettings(draws=args.draws, tune=args.draws, seed=args.seeds[0])
    return bp.fit(train, model=args.statistics_model, settings=settings, progressbar=False)


def preset_data(comparisons: pd.DataFrame, args: argparse.Namespace) -> tuple[pd.DataFrame, bp.Fit]:
    """`simulate --preset realistic` with as many tasks and datasets, and its fit by the
    statistics' model."""
    n_tasks = len(pd.unique(comparisons[["task_a", "task_b"]].to_numpy().ravel()))
    n_datasets = len(pd.unique(comparisons[["dataset_a", "dataset_b"]].to_numpy().ravel()))
    config = bp.SimulationConfig.realistic(n_tasks, n_datasets, seed=args.seeds[0])
    simulated = bp.simulate(replace(config, **args.preset_sizes)).comparisons
    return simulated, statistics_fit(simulated, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comparisons", type=Path, default=REAL)
    parser.add_argument("--seeds", type=_seeds, default=[0, 1])
    parser.add_argument("--models", type=lambda text: text.split(","), default=available_models())
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--target-accept", type=float, default=0.9, help="NUTS's (default 0.9)")
    parser.add_argument(
        "--until-trusted",
        action="store_true",
        help="draw blocks of --draws until the trust thresholds hold (at most 5 blocks)",
    )
    parser.add_argument("--save-fits", type=Path, default=None)
    parser.add_argument(
        "--statistics",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="compare the file's statistics with the realistic preset (fits of --statistics-model)",
    )
    parser.add_argument(
        "--statistics-model",
        default=DEFAULT_MODEL,
        help="the model whose fits measure the utility statistics (default: the default model)",
    )
    parser.add_argument(
        "--preset-sizes",
        type=json.loads,
        default={},
        help='the preset with other sizes, e.g. \'{"close_pairs": 0.5, "pair_sd": 5}\'',
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "real.csv")
    parser.add_argument(
        "--prior",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a prior scale of the model builder (a key of PRIORS), for prior sensitivity",
    )
    args = parser.parse_args()
    for setting in args.prior:
        name, value = setting.split("=")
        if name not in PRIORS:
            parser.error(f"--prior: unknown prior '{name}' (known: {', '.join(PRIORS)})")
        PRIORS[name] = float(value)
    if not args.comparisons.exists():
        print(
            f"skipped: no comparisons file at {args.comparisons} (the real development set lives "
            "in ../shared/real/ next to the checkout; pass --comparisons PATH for another)"
        )
        sys.exit(0)
    results, positions, statistics = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    results.to_csv(args.out, index=False)
    positions.to_csv(args.out.with_name(f"{args.out.stem}_position.csv"), index=False)
    statistics.to_csv(args.out.with_name(f"{args.out.stem}_statistics.csv"))
    columns = ["loglik", "brier", "accuracy", "calibration", "wall_s", "min_ess_bulk", "max_r_hat"]
    columns += ["divergences"]
    summary = results.groupby("method", sort=False)[[c for c in columns if c in results]].mean()
    summary["passed"] = results.groupby("method", sort=False)["passed"].agg(
        lambda values: (
            f"{int(values.fillna(False).sum())}/{len(values)}" if values.notna().any() else ""
        )
    )
    print(f"\nHeld-out pairs of {args.comparisons} (20%), seeds {args.seeds}, means over seeds")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    keys = ["scope", "dataset_a", "dataset_b"]
    rates = positions.pivot_table(index=keys, columns="method", values="predicted", sort=False)
    rates.insert(0, "observed", positions.groupby(keys, sort=False)["observed"].mean())
    print("\nHeld-out first-shown win rate by first-shown task's dataset (and second's), observed")
    print(rates.round(3).to_string())
    print("\nWhat makes real data hard: the file against the realistic preset")
    print(statistics.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out} and its _position and _statistics tables")


if __name__ == "__main__":
    main()
