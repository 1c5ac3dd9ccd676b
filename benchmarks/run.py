"""Fit speed and accuracy at research sizes; prints a table and writes benchmarks/results/fit.csv.

Each (size, method) runs in its own process so that peak memory is its own. Methods:
  bayespref  the default model with NumPyro NUTS, default settings (4 chains x 1000 draws), without
             the pointwise log-likelihood (a separate, optional cost at large sizes)
  pymc       the same PyMC model with PyMC's own NUTS sampler
  mle        the reference maximum-likelihood Thurstone fit (L-BFGS), the speed floor
Columns: wall time including compilation, min ESS_bulk over mu, ESS_bulk per second, max r_hat,
divergences, Pearson and Spearman of mu against truth, 90% interval coverage of mu, peak memory.
Usage:
    python benchmarks/run.py --sizes 500x10000,1000x30000 --methods bayespref,pymc,mle
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [
    "size",
    "method",
    "wall_s",
    "min_ess_bulk",
    "ess_per_s",
    "max_rhat",
    "divergences",
    "pearson",
    "spearman",
    "coverage90",
    "peak_mb",
]
METHODS = ("bayespref", "pymc", "mle")


def _accuracy(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    return {
        "pearson": float(pearsonr(estimate, truth)[0]),
        "spearman": float(spearmanr(estimate, truth)[0]),
    }


def _posterior_row(idata, tasks: pd.DataFrame, truth: pd.DataFrame, wall: float) -> dict:
    import arviz as az

    from bayespref.posterior import draws

    mu = draws(idata["posterior"].to_dataset(), "mu")
    true_mu = truth.set_index("task_id").loc[tasks["task_id"], "mu"].to_numpy()
    low, high = np.quantile(mu, [0.05, 0.95], axis=1)
    min_ess = float(az.ess(idata, var_names=["mu"], method="bulk")["mu"].min())
    return {
        "wall_s": wall,
        "min_ess_bulk": min_ess,
        "ess_per_s": min_ess / wall,
        "max_rhat": float(az.rhat(idata, var_names=["mu"])["mu"].max()),
        "divergences": int(idata["sample_stats"]["diverging"].values.sum()),
        **_accuracy(mu.mean(axis=1), true_mu),
        "coverage90": float(np.mean((true_mu >= low) & (true_mu <= high))),
    }


def measure(size: str, method: str, seed: int) -> dict:
    """One (size, method) in this process."""
    import bayespref as bp

    n_tasks, n_trials = (int(x) for x in size.split("x"))
    simulation = bp.simulate(
        n_tasks=n_tasks, n_datasets=5, n_comparisons=n_trials, position_bias=0.3, seed=seed
    )
    started = time.perf_counter()
    if method == "mle":
        from bayespref.baselines import fit_reference

        reference = fit_reference(simulation.comparisons)
        wall = time.perf_counter() - started
        truth = simulation.truth.set_index("task_id").loc[reference.task_ids, "mu"].to_numpy()
        row = {"wall_s": wall, **_accuracy(reference.mu, truth)}
    elif method == "bayespref":
        result = bp.fit(
            simulation.comparisons, simulation.tasks, progressbar=False, log_likelihood=False
        )
        wall = time.perf_counter() - started
        row = _posterior_row(result.idata, result.tasks, simulation.truth, wall)
    elif method == "pymc":
        import pymc as pm

        from bayespref.model import build_model

        data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
        with build_model(bp.resolve_spec(None), data):
            idata = pm.sample(random_seed=seed, progressbar=False, target_accept=0.9, cores=2)
        wall = time.perf_counter() - started
        row = _posterior_row(idata, data.tasks, simulation.truth, wall)
    else:
        raise SystemExit(f"unknown method '{method}'; known: {', '.join(METHODS)}")
    from bayespref.device import describe

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "method": method, **row, "peak_mb": peak, "device": describe()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500x10000,1000x30000")
    parser.add_argument("--methods", default="bayespref,mle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.seed)))
        return
    rows = []
    for size in args.sizes.split(","):
        for method in args.methods.split(","):
            done = subprocess.run(
                [sys.executable, __file__, "--one", size, method, "--seed", str(args.seed)],
                capture_output=True,
                text=True,
            )
            if done.returncode != 0:
                print(done.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"{size} {method} failed")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(rows[-1], flush=True)
    table = pd.DataFrame(rows).reindex(columns=COLUMNS)
    out = Path(__file__).parent / "results" / "fit.csv"
    out.parent.mkdir(exist_ok=True)
    table.to_csv(out, index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
