"""Simulation-based calibration of a model: rank-uniformity table and a histogram figure.

Usage: python benchmarks/sbc.py [--model hierarchical] [--replications 100]
       python benchmarks/sbc.py --model full --replications 60 --tasks 16 --comparisons 480 \
           --draws 500 [--seed 1 --name full-seed1] [--resume]
       python benchmarks/sbc.py --model benchmarks/specs/full-norefusal.toml ...  (an ablation)
       python benchmarks/sbc.py --pool full,full-seed1,full-seed2
       python benchmarks/sbc.py --model position-by-dataset --design realistic --tasks 30 \
           --datasets 3 --comparisons 1125 --name position-by-dataset-realistic
Writes benchmarks/results/sbc_<name>.csv (ranks, rewritten after every replication; --resume
goes on from the replications it holds, with the same settings) and sbc_<name>.png (histograms
with 99% bands of a uniform histogram); <name> is --name, else the model's name or the stem of
its spec file. A spec with condition shifts gets a design with 3 conditions.
`--design realistic` asks each pair 5 times in one order, as `simulate --preset realistic` and
real runs do (the parameters are still drawn from the model's prior: SBC checks the sampler and
model on that design, not the preset's truth); the default design asks pairs in both orders.
The table gives each family's chi-square p-value, the same corrected for ranks that are dependent
within a replication (p_value_clustered, bayespref.sbc.uniformity), and the bins outside the 99%
band of one bin (dark grey) and outside the 99% band of the whole histogram (light grey: Bonferroni
over the bins, widened by the design effect). With 14 families of 10 bins a calibrated model puts
some bin outside a per-bin band in about half of all runs: the script prints that chance.
`--resume` on a finished run only redraws the table and the figure from the CSV (without it, an
existing run is refused, not overwritten); `--pool a,b`
reports finished runs a and b together (sbc_pooled_a+b.png).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.stats import binom  # noqa: E402

from bayespref.inference.settings import SamplerSettings  # noqa: E402
from bayespref.workflows.sbc import SEED_STRIDE, replication_ranks, uniformity  # noqa: E402

BINS = 10
SETTING_KEYS = ("model", "seed", "tasks", "comparisons", "draws")
DESIGN_DEFAULTS = {"datasets": 2, "design": "both-orders"}
REALISTIC_REPEATS = 5
COLUMNS = 5


def bands(n: int, effect: float) -> tuple[np.ndarray, np.ndarray]:
    """99% bands for one bin's count among n uniform ranks: per bin, and for the histogram as a
    whole (Bonferroni over its bins), the latter widened by the design effect of ranks that are
    dependent within a replication (bayespref.sbc.uniformity)."""
    per_bin = binom.ppf([0.005, 0.995], n, 1 / BINS)
    whole = binom.ppf([0.005 / BINS, 1 - 0.005 / BINS], n, 1 / BINS)
    expected = n / BINS
    return per_bin, expected + (whole - expected) * np.sqrt(effect)


def chance_of_bins_outside(sizes: list[int], simulations: int = 4000, seed: int = 0) -> float:
    """How often a calibrated run, with independent uniform ranks in families of these sizes,
    puts at least one bin outside its per-bin 99% band."""
    rng = np.random.default_rng(seed)
    hit = np.zeros(simulations, dtype=bool)
    for n in sizes:
        counts = rng.multinomial(n, np.full(BINS, 1 / BINS), size=simulations)
        (low, high), _ = bands(n, 1.0)
        hit |= ((counts < low) | (counts > high)).any(axis=1)
    return float(hit.mean())


def report(ranks: pd.DataFrame, figure_path: Path) -> None:
    """Print the uniformity table and draw the rank histograms with their bands."""
    table = uniformity(ranks, BINS)
    families = table["parameter"].tolist()
    grid_rows, grid_columns = -(-len(families) // COLUMNS), min(len(families), COLUMNS)
    figure, axes = plt.subplots(
        grid_rows, grid_columns, figsize=(3 * grid_columns, 2.6 * grid_rows), squeeze=False
    )
    outside_bin, outside_histogram = [], []
    for axis, row in zip(axes.flat, table.itertuples(), strict=False):
        counts = np.asarray(row.counts)
        (low, high), (whole_low, whole_high) = bands(row.n, row.design_effect)
        outside_bin.append(int(np.sum((counts < low) | (counts > high))))
        outside_histogram.append(int(np.sum((counts < whole_low) | (counts > whole_high))))
        axis.bar(range(BINS), counts, color="tab:blue", zorder=2)
        axis.axhspan(whole_low, whole_high, color="grey", alpha=0.15, zorder=0)
        axis.axhspan(low, high, color="grey", alpha=0.3, zorder=1)
        axis.set_title(f"{row.parameter} (n={row.n})", fontsize=9)
    for axis in axes.flat[len(families) :]:
        axis.axis("off")
    figure.tight_layout()
    figure.savefig(figure_path, dpi=100)
    table["outside_bin_band"] = outside_bin
    table["outside_histogram_band"] = outside_histogram
    print(table.to_string(index=False))
    chance = chance_of_bins_outside(table["n"].tolist())
    print(
        f"a calibrated run with these family sizes puts a bin outside some per-bin 99% band "
        f"{chance:.0%} of the time (simulated with independent uniform ranks; dependent ranks, "
        "as in mu, make it more often)"
    )
    per_replication = ranks.groupby("replication")["divergences"].first()
    print(
        f"{len(per_replication)} replications; replications with divergences: "
        f"{int((per_replication > 0).sum())} (median {per_replication.median():.0f})"
    )


def pooled(names: list[str], out: Path) -> pd.DataFrame:
    """Finished runs' ranks together, their replications numbered apart (runs with different
    seeds share no draws)."""
    frames = []
    for run, name in enumerate(names):
        path = out / f"sbc_{name}.csv"
        if not path.exists():
            raise SystemExit(f"no SBC run named '{name}': {path} does not exist")
        ranks = pd.read_csv(path)
        frames.append(ranks.assign(replication=run * SEED_STRIDE + ranks["replication"]))
    return pd.concat(frames, ignore_index=True)


def check_settings(path: Path, args: argparse.Namespace) -> None:
    """Record a run's settings beside its ranks; a resumed run must use the same ones, or its
    replications would not continue the same draws."""
    settings = {key: getattr(args, key) for key in (*DESIGN_DEFAULTS, *SETTING_KEYS)}
    if args.resume and path.exists():
        recorded = DESIGN_DEFAULTS | json.loads(path.read_text())  # runs from before --design
        if recorded != settings:
            raise SystemExit(f"--resume with other settings than {path} records: {recorded}")
        return
    path.write_text(json.dumps(settings, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hierarchical")
    parser.add_argument("--replications", type=int, default=100)
    parser.add_argument("--tasks", type=int, default=12)
    parser.add_argument("--comparisons", type=int, default=120)
    parser.add_argument("--datasets", type=int, default=DESIGN_DEFAULTS["datasets"])
    parser.add_argument(
        "--design", choices=("both-orders", "realistic"), default=DESIGN_DEFAULTS["design"]
    )
    parser.add_argument("--draws", type=int, default=250, help="per chain, 2 chains; tune alike")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--name", help="of the output files; default: the model's name or stem")
    parser.add_argument("--pool", help="comma-separated names of finished runs to report together")
    args = parser.parse_args()
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    if args.pool:
        names = args.pool.split(",")
        figure_path = out / f"sbc_pooled_{'+'.join(names)}.png"
        report(pooled(names, out), figure_path)
        print(f"wrote {figure_path}")
        return
    name = args.name or Path(args.model).stem  # a name in models/ or a spec file
    path = out / f"sbc_{name}.csv"
    if path.exists() and not args.resume:
        raise SystemExit(f"{path} holds an earlier run: pass --resume to go on, or --name")
    check_settings(path.with_suffix(".json"), args)
    frames = [pd.read_csv(path)] if args.resume and path.exists() else []
    done = int(frames[0]["replication"].max()) + 1 if frames else 0
    started = time.perf_counter()
    for rows in replication_ranks(
        args.model,
        range(done, args.replications),
        n_tasks=args.tasks,
        n_datasets=args.datasets,
        n_comparisons=args.comparisons,
        repeats=REALISTIC_REPEATS if args.design == "realistic" else None,
        one_order=args.design == "realistic",
        settings=SamplerSettings(chains=2, draws=args.draws, tune=args.draws, seed=args.seed),
        seed=args.seed,
    ):
        frames.append(rows)
        pd.concat(frames, ignore_index=True).to_csv(path, index=False)
        elapsed = time.perf_counter() - started
        print(f"replication {rows['replication'].iloc[0]}: {elapsed:.0f} s", flush=True)
    ran = max(0, args.replications - done)
    print(f"{ran} replications run in {time.perf_counter() - started:.0f} s")
    report(pd.concat(frames, ignore_index=True), path.with_suffix(".png"))
    print(f"wrote {path} and .png")


if __name__ == "__main__":
    main()
