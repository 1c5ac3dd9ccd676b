"""How short can NUTS's tuning be, from jittered starts and from the Laplace warm start?

For each size and each (init, tune) pair, one fit of the default model on run.py's simulated data
with 4 chains drawing blocks of --block draws per chain until every reported quantity has
r_hat <= 1.01 and ess_bulk >= 400 (`until_trusted`), at most --max-draws per chain. Short tuning
that leaves the sampler poorly adapted shows as more draws to the target (`draws`), lower ESS per
draw, divergences, or the cap reached. Columns: the fit's wall time (model, warm start, sampling,
diagnostics), the warm start's seconds, sampling seconds until the target held (`trust_s`, tuning
included), draws per chain, whether the target was reached, max r_hat, min ess_bulk and its share
of the draws, divergences, Spearman and 90% coverage of mu against the truth.
Writes benchmarks/results/tuning.csv.
Usage: python benchmarks/tuning.py --sizes 500x10000 --runs laplace:50,laplace:100,jitter:1000
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
from run import posterior_row, simulate_size, write_table

import bayespref as bp

COLUMNS = [
    "size",
    "init",
    "tune",
    "wall_s",
    "warm_s",
    "trust_s",
    "draws",
    "reached",
    "max_rhat",
    "min_ess_bulk",
    "ess_per_draw",
    "divergences",
    "spearman",
    "coverage90",
]


def measure(size: str, init: str, tune: int, block: int, max_draws: int, seed: int) -> dict:
    simulation = simulate_size(size, seed)
    settings = bp.SamplerSettings(
        tune=tune, draws=block, init=init, until_trusted=True, max_draws=max_draws, seed=seed
    )
    started = time.perf_counter()
    result = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        settings=settings,
        progressbar=False,
        log_likelihood=False,
    )
    wall = time.perf_counter() - started
    row = posterior_row(result.idata, result.tasks, simulation.truth, wall)
    sampler = result.diagnostics.sampler
    measures = result.diagnostics.measures
    return {
        "size": size,
        "init": sampler["init"],
        "tune": tune,
        **row,
        "warm_s": sampler["seconds_warm_start"],
        "trust_s": sampler["seconds_to_trust"],
        "draws": sampler["draws_per_chain"],
        "reached": sampler["target_reached"],
        "max_rhat": measures["max_r_hat"],
        "min_ess_bulk": measures["min_ess_bulk"],
        "ess_per_draw": measures["min_ess_bulk"] / (settings.chains * sampler["draws_per_chain"]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500x10000")
    parser.add_argument("--runs", default="laplace:50,laplace:100,laplace:200,jitter:1000")
    parser.add_argument("--block", type=int, default=100)
    parser.add_argument("--max-draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results/tuning.csv")
    args = parser.parse_args()
    rows = []
    for size in args.sizes.split(","):
        for run in args.runs.split(","):
            init, tune = run.split(":")
            rows.append(measure(size, init, int(tune), args.block, args.max_draws, args.seed))
            print(rows[-1], flush=True)
    write_table(pd.DataFrame(rows).reindex(columns=COLUMNS), args.out)


if __name__ == "__main__":
    main()
