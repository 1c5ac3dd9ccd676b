"""Does NUTS in float32 give the float64 posterior? And how much faster is it on this machine?

For each size, the default model is fitted twice on the same simulated data with the default
settings (4 chains x 1,000 draws), once per precision, in alternating order over `--repeats`
rounds (the machine's speed drifts, so each round compares the two side by side). For every
posterior quantity (each task's mu, the dataset terms, position bias) it prints the difference
of the float32 and float64 posterior means in units of their joint Monte Carlo standard error
(z); if float32 changes nothing, z is standard normal: about 5% beyond 2, none beyond 4. Also
the ratio of posterior sds, the 90% interval coverage of the true mu, min ESS_bulk of mu and wall
time. Each fit has a seed of its own; the float32 row of a round carries the agreement.
Writes benchmarks/results/precision.csv.
Usage: python benchmarks/precision.py [--sizes 500x10000] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

import bayespref as bp
from bayespref.posterior import reported_variables
from bayespref.simulate import Simulation

PRECISIONS = ("float64", "float32")


def _fit(simulation: Simulation, precision: str, seed: int) -> tuple[bp.Fit, float]:
    started = time.perf_counter()
    fitted = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        settings=bp.SamplerSettings(seed=seed, precision=precision),
        progressbar=False,
        log_likelihood=False,
    )
    return fitted, time.perf_counter() - started


def _flat(stat, names: list[str]) -> np.ndarray:
    return np.concatenate([np.ravel(stat[name].values) for name in names])


def agreement(reference: bp.Fit, other: bp.Fit) -> dict[str, float]:
    """z of the difference in posterior means, and the ratio of posterior sds, over every
    reported quantity (constants, with no spread, left out)."""
    names = reported_variables(reference.idata["posterior"].to_dataset())
    mean, sd, mcse = {}, {}, {}
    for label, fitted in (("reference", reference), ("other", other)):
        posterior = fitted.idata["posterior"].to_dataset()[names].astype(np.float64)
        mean[label] = _flat(posterior.mean(("chain", "draw")), names)
        sd[label] = _flat(posterior.std(("chain", "draw")), names)
        mcse[label] = _flat(az.mcse(fitted.idata, var_names=names, method="mean"), names)
    varying = sd["reference"] > 0
    z = (mean["other"] - mean["reference"]) / np.hypot(mcse["other"], mcse["reference"])
    z, ratio = z[varying], (sd["other"] / sd["reference"])[varying]
    return {
        "quantities": int(varying.sum()),
        "max_abs_z": float(np.max(np.abs(z))),
        "share_abs_z_over_2": float(np.mean(np.abs(z) > 2)),
        "sd_ratio_median": float(np.median(ratio)),
        "sd_ratio_min": float(np.min(ratio)),
        "sd_ratio_max": float(np.max(ratio)),
    }


def _summary(fitted: bp.Fit, simulation: Simulation) -> dict[str, float]:
    table = fitted.utilities.set_index("task_id").join(simulation.truth.set_index("task_id")["mu"])
    inside = (table["mu"] >= table["mu_low"]) & (table["mu"] <= table["mu_high"])
    mu_ess = az.ess(fitted.idata, var_names=["mu"], method="bulk")["mu"]
    return {
        "coverage90": float(inside.mean()),
        "min_ess_bulk_mu": float(mu_ess.min()),
        "max_rhat": fitted.diagnostics["max_r_hat"],
        "divergences": fitted.diagnostics["divergences"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500x10000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "precision.csv"
    )
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        n_tasks, n_trials = (int(x) for x in size.split("x"))
        simulation = bp.simulate(
            n_tasks=n_tasks, n_datasets=5, n_comparisons=n_trials, position_bias=0.3, seed=0
        )
        for repeat in range(args.repeats):
            order = PRECISIONS if repeat % 2 == 0 else PRECISIONS[::-1]
            fits, round_rows = {}, {}
            for precision in order:
                # A seed of its own per fit, so that z compares independent runs.
                seed = args.seed + 2 * repeat + PRECISIONS.index(precision)
                fitted, wall = _fit(simulation, precision, seed)
                fits[precision] = fitted
                summary = _summary(fitted, simulation)
                round_rows[precision] = (
                    {"size": size, "repeat": repeat, "precision": precision, "wall_s": wall}
                    | summary
                    | {"ess_per_s": summary["min_ess_bulk_mu"] / wall}
                )
                print(round_rows[precision], flush=True)
            round_rows["float32"] |= agreement(fits["float64"], fits["float32"])
            rows.extend(round_rows[precision] for precision in order)
    table = pd.DataFrame(rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
