"""Held-out prediction on new pairs: noise structures of the Bayesian model vs the reference MLE.

For each seed, simulate data, hold out 10% of the unordered pairs (all their trials), fit on the
rest, and score the held-out choice trials:
  loglik   mean log P(observed choice) (posterior predictive mean for bayespref; plug-in for MLE)
  brier    mean squared error of P(first chosen)
  ece      expected calibration error over 10 equal-count bins of the predicted probability
Also: sampling wall time, divergences and max r_hat. This is how the default noise structure was
chosen. Usage:
    python benchmarks/heldout.py [--tasks 300] [--seeds 0,1] [--draws 1000] [--preset realistic]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import bayespref as bp
from bayespref.analysis.baselines import fit_reference
from bayespref.model.spec import ModelSpec

MODELS = {
    "shared": ModelSpec(name="hierarchical-shared", noise="shared"),
    "per-dataset (default)": bp.resolve_spec("hierarchical"),
    "per-task": bp.resolve_spec("hierarchical-sigma"),
}


def split_pairs(comparisons: pd.DataFrame, share: float, seed: int, by: tuple[str, ...] = ()):
    """Hold out `share` of the unordered pairs (all their trials); with `by` (e.g.
    ("condition",)) a unit is an unordered pair within each value of those columns."""
    pair = np.sort(comparisons[["task_a", "task_b"]].to_numpy(), axis=1)
    keys = pd.Series([f"{x}|{y}" for x, y in pair])
    for column in by:
        keys = keys + "|" + comparisons[column].astype(str).to_numpy()
    unique = keys.unique()
    rng = np.random.default_rng(seed)
    held = set(rng.choice(unique, size=int(share * len(unique)), replace=False))
    mask = keys.isin(held).to_numpy()
    return comparisons[~mask].reset_index(drop=True), comparisons[mask].reset_index(drop=True)


def score(p_first: np.ndarray, chose_first: np.ndarray) -> dict[str, float]:
    p = np.clip(p_first, 1e-15, 1 - 1e-15)
    bins = pd.qcut(p, 10, labels=False, duplicates="drop")
    frame = pd.DataFrame({"bin": bins, "p": p, "y": chose_first})
    grouped = frame.groupby("bin").agg(p=("p", "mean"), y=("y", "mean"), n=("y", "size"))
    return {
        "loglik": float(np.mean(np.where(chose_first, np.log(p), np.log1p(-p)))),
        "brier": float(np.mean((p - chose_first) ** 2)),
        "ece": float(np.sum(grouped["n"] * np.abs(grouped["p"] - grouped["y"])) / len(frame)),
    }


def run(args: argparse.Namespace) -> pd.DataFrame:
    rows = []
    for seed in args.seeds:
        if args.preset == "realistic":
            config = bp.SimulationConfig.realistic(n_tasks=args.tasks, seed=seed)
        else:
            config = bp.SimulationConfig(
                n_tasks=args.tasks, n_comparisons=30 * args.tasks, task_sigma_sd=0.4, seed=seed
            )
        simulation = bp.simulate(config)
        train, test = split_pairs(simulation.comparisons, 0.1, seed)
        test = test[test["choice"].isin(["a", "b"])]
        test = test[test["task_a"].isin(set(train["task_a"]) | set(train["task_b"]))]
        test = test[test["task_b"].isin(set(train["task_a"]) | set(train["task_b"]))]
        chose_first = (test["choice"] == "a").to_numpy()
        for label, spec in MODELS.items():
            started = time.perf_counter()
            result = bp.fit(
                train,
                simulation.tasks,
                model=spec,
                settings=bp.SamplerSettings(draws=args.draws, tune=args.draws, seed=seed),
                progressbar=False,
            )
            wall = time.perf_counter() - started
            predicted = bp.predict(result, test)["p_first_mean"].to_numpy()
            rows.append(
                {
                    "seed": seed,
                    "method": label,
                    **score(predicted, chose_first),
                    "wall_s": wall,
                    "divergences": result.diagnostics.measures["divergences"],
                    "max_rhat": result.diagnostics.measures["max_r_hat"],
                }
            )
            print(rows[-1], flush=True)
        started = time.perf_counter()
        reference = fit_reference(train)
        wall = time.perf_counter() - started
        predicted = reference.p_first(test["task_a"], test["task_b"])
        rows.append(
            {
                "seed": seed,
                "method": "reference MLE",
                **score(predicted, chose_first),
                "wall_s": wall,
            }
        )
        print(rows[-1], flush=True)
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=300)
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=[0, 1])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--preset", choices=["realistic", "standard"], default="realistic")
    args = parser.parse_args()
    results = run(args)
    out = Path(__file__).parent / "results" / f"heldout_{args.preset}.csv"
    out.parent.mkdir(exist_ok=True)
    results.to_csv(out, index=False)
    summary = results.groupby("method", sort=False)[["loglik", "brier", "ece", "wall_s"]].mean()
    print(f"\nHeld-out new pairs, {args.preset} data, {args.tasks} tasks, seeds {args.seeds}")
    print(summary.to_string(float_format=lambda v: f"{v:.4f}"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
