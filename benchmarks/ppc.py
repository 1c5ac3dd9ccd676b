"""Posterior predictive checks of saved fits, with the replicates a fit's cells call for beside
binomial cells at P(first) (what every fit replicated before beta-binomial cells and pair
effects drew what a cell's repeats share): observed, then each one's mean and 94% interval.

Usage (fits saved by `benchmarks/real.py --save-fits DIR`, or any fit folder):
    python benchmarks/ppc.py DIR/seed0/beta-binomial DIR/seed0/position-by-dataset ...
                             [--out benchmarks/results/ppc_real.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from unittest import mock

import pandas as pd

import bayespref as bp
from bayespref.analysis.prediction import first_choice_draws
from bayespref.checks import ppc


def _binomial_at_p(fit, cells, draws, rng):
    """P(first) as the shared probability of every cell, pair effects integrated out."""
    columns = ("a_idx", "b_idx", "condition_idx")
    return first_choice_draws(fit, *(cells[c].to_numpy() for c in columns), draws)


def table(fit_dir: Path) -> pd.DataFrame:
    fit = bp.load_fit(fit_dir)
    cells = fit.cells
    shared = ppc.posterior_predictive_checks(fit, cells)
    with mock.patch.object(ppc, "replicate_choice_draws", _binomial_at_p):
        binomial = ppc.posterior_predictive_checks(fit, cells)
    shown = ["replicated_mean", "replicated_low", "replicated_high", "outside"]
    frame = shared[["statistic", "observed", *shown]].merge(
        binomial[["statistic", *shown]], on="statistic", suffixes=("", "_binomial")
    )
    return frame.assign(fit=str(fit_dir), model=fit.spec.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fits", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    frame = pd.concat([table(path) for path in args.fits], ignore_index=True)
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.drop(columns="fit").round(3).to_string(index=False))
    if args.out is not None:
        frame.to_csv(args.out, index=False)


if __name__ == "__main__":
    main()
