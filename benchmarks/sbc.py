"""Simulation-based calibration of a model: rank-uniformity table and a histogram figure.

Usage: python benchmarks/sbc.py [--model hierarchical] [--replications 100]
       python benchmarks/sbc.py --model full --replications 60 --tasks 16 --comparisons 480 \
           --draws 500 [--resume]
Writes benchmarks/results/sbc_<model>.csv (ranks, rewritten after every replication; --resume
goes on from the replications it holds, with the same settings) and sbc_<model>.png (histograms
with the 99% band of a uniform histogram); <model> is the name, or the stem of a spec file. A spec
with condition shifts gets a design with 3 conditions.
The table gives each family's chi-square p-value, and the same corrected for dependent ranks
within a replication (p_value_clustered, bayespref.sbc.uniformity), and the bins outside the 99%
band for independent ranks and outside that band widened by the design effect (the lighter band).
`--resume` on a finished run only redraws the table and the figure from the CSV.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import binom  # noqa: E402

from bayespref.fit import SamplerSettings  # noqa: E402
from bayespref.sbc import replication_ranks, uniformity  # noqa: E402

BINS = 10
COLUMNS = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hierarchical")
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--comparisons", type=int, default=120)
    parser.add_argument("--draws", type=int, default=250, help="per chain, 2 chains; tune alike")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    args = parser.parse_args()
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    name = Path(args.model).stem  # a name in models/ or a spec file
    path = out / f"sbc_{name}.csv"
    frames = [pd.read_csv(path)] if args.resume and path.exists() else []
    done = int(frames[0]["replication"].max()) + 1 if frames else 0
    started = time.perf_counter()
    for rows in replication_ranks(
        args.model,
        range(done, args.replications),
        n_tasks=args.tasks,
        n_comparisons=args.comparisons,
        settings=SamplerSettings(chains=2, draws=args.draws, tune=args.draws, seed=args.seed),
        seed=args.seed,
    ):
        frames.append(rows)
        pd.concat(frames, ignore_index=True).to_csv(path, index=False)
        elapsed = time.perf_counter() - started
        print(f"replication {rows['replication'].iloc[0]}: {elapsed:.0f} s", flush=True)
    wall = time.perf_counter() - started
    ranks = pd.concat(frames, ignore_index=True)
    table = uniformity(ranks, BINS)
    families = table["parameter"].tolist()
    grid_rows, grid_columns = -(-len(families) // COLUMNS), min(len(families), COLUMNS)
    figure, axes = plt.subplots(
        grid_rows, grid_columns, figsize=(3 * grid_columns, 2.6 * grid_rows), squeeze=False
    )
    outside, outside_clustered = [], []
    for axis, name, effect in zip(axes.flat, families, table["design_effect"], strict=False):
        group = ranks[ranks["parameter"] == name]
        edges = np.linspace(0, group["n_draws"].iloc[0] + 1, BINS + 1)
        counts, _ = np.histogram(group["rank"], bins=edges)
        low, high = binom.ppf([0.005, 0.995], len(group), 1 / BINS)
        # The same band widened for dependent ranks within a replication (see uniformity).
        expected = len(group) / BINS
        wide_low, wide_high = expected + (np.array([low, high]) - expected) * np.sqrt(effect)
        outside.append(int(np.sum((counts < low) | (counts > high))))
        outside_clustered.append(int(np.sum((counts < wide_low) | (counts > wide_high))))
        axis.bar(range(BINS), counts, color="tab:blue")
        axis.axhspan(wide_low, wide_high, color="grey", alpha=0.15)
        axis.axhspan(low, high, color="grey", alpha=0.3)
        axis.set_title(f"{name} (n={len(group)})", fontsize=9)
    for axis in axes.flat[len(families) :]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(path.with_suffix(".png"), dpi=100)
    table["bins_outside_99"] = outside
    table["bins_outside_99_clustered"] = outside_clustered
    print(table.to_string(index=False))
    per_replication = ranks.groupby("replication")["divergences"].first()
    print(
        f"{args.replications} replications ({args.replications - done} in {wall:.0f} s); "
        "replications with divergences: "
        f"{int((per_replication > 0).sum())} (median {per_replication.median():.0f})"
    )
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
