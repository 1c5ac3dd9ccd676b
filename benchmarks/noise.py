"""Per-dataset noise of saved fits side by side: the report's noise table (posterior mean and
94% interval of sigma_dataset, of the utility spread in units of the dataset's own noise, and
of lapse, pair-effect sd or concentration where the model has them) with each fit's diagnostics;
and, for models with a noise-like term per task, how much the data tell the tasks apart: the
contraction 1 - posterior sd / prior sd of each task's standard-normal offset (0: the task's
offset is its prior's; 1: pinned), its median and maximum over tasks, by dataset.

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


# Per-task offsets, each a free standard-normal coordinate around its dataset's level.
TASK_OFFSETS = ("sigma_offset", "lapse_offset", "pair_sd_offset", "concentration_offset")


def contraction(fit_dir: Path) -> pd.DataFrame:
    """Per task offset variable of the fit and dataset: median and maximum over its tasks of
    1 - posterior sd (the offsets' prior sd is 1)."""
    fit = bp.load_fit(fit_dir)
    dataset_of = fit.tasks.set_index("task_id")["dataset"]
    rows = []
    for name in TASK_OFFSETS:
        if name not in fit.posterior:
            continue
        offsets = fit.posterior[name]
        shrunk = 1.0 - offsets.std(("chain", "draw")).to_series()
        by_dataset = shrunk.groupby(dataset_of.loc[shrunk.index].to_numpy())
        rows.append(
            pd.DataFrame({"median": by_dataset.median(), "max": by_dataset.max()}).assign(
                fit=str(fit_dir), model=fit.spec.name, offset=name
            )
        )
    return pd.concat(rows).rename_axis("dataset").reset_index() if rows else pd.DataFrame()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("fits", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    frame = pd.concat([table(path) for path in args.fits], ignore_index=True)
    shown = [c for c in frame.columns if c.endswith(("_mean", "_low", "_high"))]
    print(frame.set_index(["model", "dataset"])[shown].round(2).to_string())
    contractions = pd.concat([contraction(path) for path in args.fits], ignore_index=True)
    if not contractions.empty:
        print("\nContraction of per-task offsets (1 - posterior sd / prior sd), over tasks")
        print(contractions.set_index(["fit", "offset", "dataset"]).round(3).to_string())
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
        contraction_path = args.out.with_name(f"{args.out.stem}_contraction.csv")
        contractions.to_csv(contraction_path, index=False)
        print(f"wrote {args.out} and {contraction_path}")


if __name__ == "__main__":
    main()
