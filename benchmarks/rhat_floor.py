"""How many draws per chain the trust thresholds need from a sampler that mixes as well as a
given ESS per draw, when r_hat is taken over many quantities at once.

The trust check (checks/convergence.py) asks every reported quantity for r_hat <= 1.01. Split
r_hat of well-mixed chains still scatters above 1 by chance, by about 1 / draws per chain, and
the largest of thousands of them sets the verdict. Here every chain is an AR(1) sequence with
the stationary distribution N(0, 1) from its first draw (so the chains agree and a perfect
sampler is measured), its coefficient set by the ESS per draw asked for (1: independent draws);
the rank-normalised r_hat and bulk ESS are computed by a fit's own check (checks/convergence.py),
and each replication records whether every quantity passes. `pass_share` is the share of
replications that pass at that many draws; `median_max_r_hat` the median of the largest r_hat.

Usage:
    python benchmarks/rhat_floor.py [--quantities 780,10500] [--ess-per-draw 1,0.5]
        [--draws 200,300,...] [--chains 4] [--replications 10] [--seed 0]
        [--out benchmarks/results/rhat_floor.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayespref.checks.convergence import THRESHOLDS, convergence
from bayespref.io.atomic import write_atomically

RESULTS = Path(__file__).parent / "results"


def ar1_chains(
    chains: int, draws: int, quantities: int, ess_per_draw: float, rng: np.random.Generator
) -> np.ndarray:
    """(chains, draws, quantities) stationary AR(1) draws of N(0, 1) whose ESS per draw is
    (1 - phi) / (1 + phi) = ess_per_draw."""
    phi = (1.0 - ess_per_draw) / (1.0 + ess_per_draw)
    innovation_sd = np.sqrt(1.0 - phi**2)
    values = np.empty((chains, draws, quantities))
    values[:, 0] = rng.standard_normal((chains, quantities))
    for t in range(1, draws):
        noise = rng.standard_normal((chains, quantities))
        values[:, t] = phi * values[:, t - 1] + innovation_sd * noise
    return values


def verdict(values: np.ndarray) -> tuple[float, float]:
    """The largest r_hat and smallest bulk ESS over the quantities, as a fit's check computes
    them."""
    quantities = xr.Dataset({"quantity": (("chain", "draw", "index"), values)})
    r_hat, ess = convergence(xr.DataTree.from_dict({"posterior": quantities}))
    return float(r_hat["quantity"].max()), float(ess["quantity"].min())


def floor_rows(args: argparse.Namespace) -> list[dict]:
    rows = []
    for quantities in args.quantities:
        for ess_per_draw in args.ess_per_draw:
            for draws in args.draws:
                rng = np.random.default_rng([args.seed, quantities, draws, int(ess_per_draw * 1e3)])
                results = [
                    verdict(ar1_chains(args.chains, draws, quantities, ess_per_draw, rng))
                    for _ in range(args.replications)
                ]
                max_r_hat = np.array([r for r, _ in results])
                min_ess = np.array([e for _, e in results])
                passes = (max_r_hat <= THRESHOLDS["r_hat"]) & (min_ess >= THRESHOLDS["ess_bulk"])
                rows.append(
                    {
                        "quantities": quantities,
                        "chains": args.chains,
                        "ess_per_draw": ess_per_draw,
                        "draws_per_chain": draws,
                        "replications": args.replications,
                        "pass_share": float(passes.mean()),
                        "r_hat_pass_share": float((max_r_hat <= THRESHOLDS["r_hat"]).mean()),
                        "median_max_r_hat": float(np.median(max_r_hat)),
                        "median_min_ess_bulk": float(np.median(min_ess)),
                    }
                )
                print(rows[-1], flush=True)
    return rows


def _numbers(kind):
    return lambda text: [kind(part) for part in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quantities", type=_numbers(int), default=[780, 10500])
    parser.add_argument("--ess-per-draw", type=_numbers(float), default=[1.0, 0.5])
    parser.add_argument(
        "--draws", type=_numbers(int), default=[200, 300, 400, 500, 600, 800, 1000, 1200]
    )
    parser.add_argument("--chains", type=int, default=4)
    parser.add_argument("--replications", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "rhat_floor.csv")
    args = parser.parse_args()
    table = pd.DataFrame(floor_rows(args))
    write_atomically(args.out, table.to_csv(index=False))
    summary = table.pivot_table(
        index=["quantities", "ess_per_draw"], columns="draws_per_chain", values="pass_share"
    )
    print("share of replications passing r_hat <= 1.01 and ess_bulk >= 400, by draws per chain")
    print(summary.to_string())
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
