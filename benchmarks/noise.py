"""Per-dataset noise of saved fits side by side: the report's noise table (posterior mean and
94% interval of sigma_dataset, of the utility spread in units of the dataset's own noise, and
of lapse or pair-effect sd where the model has them) with each fit's diagnostics.

Usage (fits saved by `benchmarks/real.py --save-fits DIR`):
    python benchmarks/noise.py DIR/seed0/position-by-dataset DIR/seed0/task-pair ...
                               [--out benchmarks/results/noise_real.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import bayespref as bp
from bayespref.analysis.summaries import noise_by_dataset


def table(fit_dir: Path) -> pd.DataFrame:
    fit = bp.load_fit(fit_dir)
    diagnostics = fit.diagnostics.to_dict()
    frame = noise_by_dataset(fit.posterior, fit.datasets)
    return frame.assign(
        fit=str(fit_dir),
        model=fit.spec.name,
        max_r_hat=diagnostics["max_r_hat"],
        min_ess_bulk=diagnostics["min_ess_bulk"],
        divergences=diagnostics["divergences"],
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fits", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    frame = pd.concat([table(path) for path in args.fits], ignore_index=True)
    shown = [c for c in frame.columns if c.endswith(("_mean", "_low", "_high"))]
    print(frame.set_index(["model", "dataset"])[shown].round(2).to_string())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
