"""Simulation-based calibration of a model: rank-uniformity table and a histogram figure.

Usage: python benchmarks/sbc.py [--model hierarchical] [--replications 100]
Writes benchmarks/results/sbc_<model>.csv (ranks) and sbc_<model>.png (histograms with the 99%
band of a uniform histogram).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.stats import binom  # noqa: E402

from bayespref.sbc import sbc_ranks, uniformity  # noqa: E402

BINS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hierarchical")
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    ranks = sbc_ranks(args.model, replications=args.replications, seed=args.seed)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    ranks.to_csv(out / f"sbc_{args.model}.csv", index=False)
    table = uniformity(ranks, BINS)
    families = table["parameter"].tolist()
    figure, axes = plt.subplots(1, len(families), figsize=(3 * len(families), 2.6))
    outside = []
    for axis, name in zip(np.atleast_1d(axes), families, strict=True):
        group = ranks[ranks["parameter"] == name]
        edges = np.linspace(0, group["n_draws"].iloc[0] + 1, BINS + 1)
        counts, _ = np.histogram(group["rank"], bins=edges)
        low, high = binom.ppf([0.005, 0.995], len(group), 1 / BINS)
        outside.append(int(np.sum((counts < low) | (counts > high))))
        axis.bar(range(BINS), counts, color="tab:blue")
        axis.axhspan(low, high, color="grey", alpha=0.3)
        axis.set_title(f"{name} (n={len(group)})", fontsize=9)
    figure.tight_layout()
    figure.savefig(out / f"sbc_{args.model}.png", dpi=100)
    table["bins_outside_99"] = outside
    print(table.to_string(index=False))
    print(f"wrote {out / f'sbc_{args.model}.csv'} and .png")


if __name__ == "__main__":
    main()
