"""Where the Laplace approximation (`--method approx`) can be trusted: interval coverage of mu
against NUTS on the same data, as choices become more deterministic.

For 500 tasks: the default simulation, and the realistic preset with task spreads 2, 3.5 and 5 and
its own (5.8; 7 before 2026-12-01). Each is fitted by approx (1,000 draws) and by NUTS (2 chains x
300 draws), with a model that can describe the data, so that coverage of the true utilities
measures the method and not a mismatch: the default model for the default simulation; for the
realistic preset, per-dataset position terms with pair effects (without a pair term, a model's
noise unit absorbs the preset's pair effects and no method covers the truth's utilities), and
`beta-binomial` and `beta-binomial-pair` (beta-binomial cells; the default since 2026-12-02 adds a
position term per ordered dataset pair, which the preset does not have), which integrate the pair
effects out. Their noise unit is then the noise between pairs: the preset's pair effects are in
each pair's noise units, so a pair's marginal P(first) is F((mu_i - mu_j + beta) / sqrt((s_i^2 +
s_j^2)(1 + pair_sd^2 / 2))), and the truth is compared in units of s sqrt(1 + pair_sd^2 / 2) per
task (each dataset's root mean s^2, the geometric mean over datasets 1, as the model's noise):
`truth_scale`, the factor the true mu is divided by (1 for the others).
benchmarks/results/approx_coverage_additive_pairs.csv holds the runs on the preset before
2026-12-01, whose pair effects did not scale with the noise (units sqrt(s^2 + pair_sd^2 / 2));
since them approx refuses models with pair effects (inference/approx.py: unsupported) and the
script records the refusal for them; the run on the preset as it was before issue 22, with the
default model, is approx_coverage_old_preset.csv. Prints, per case, model and method, the share of
trials predicted beyond 5% / 95% at the approx mode (`near_certain_share`, the diagnostic that
fails approx above 0.5), the coverage of the 94% intervals of mu, the mean posterior sd of mu,
Spearman against the truth, the slope of posterior means on the truth (below 1: shrunk), wall
seconds and the 1-minute load; merges its rows into benchmarks/results/approx_coverage.csv by
(case, seed, model, method), so cases can run one at a time.
With --real PATH (e.g. ../shared/real/gemma3_27b_persona_500/comparisons.csv), approx against
NUTS on a real file instead (real_agreement), case `real`.
Usage: python benchmarks/approx_coverage.py [--cases NAME ...] [--models default,pair,...]
                                            [--seed 0] [--real PATH]
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import bayespref as bp
from bayespref.io.atomic import write_atomically
from bayespref.model.spec import resolve_spec

N_TASKS = 500
REALISTIC = bp.SimulationConfig.realistic(n_tasks=N_TASKS, seed=0)
PAIR_EFFECTS = bp.ModelSpec(
    name="position-by-dataset with pair effects", position="per-dataset", overdispersion="pair"
)
MODELS = {
    "default": None,
    "pair": PAIR_EFFECTS,
    "beta-binomial": "beta-binomial",
    "beta-binomial-pair": "beta-binomial-pair",
}
CASES = {
    "default": (
        bp.SimulationConfig(
            n_tasks=N_TASKS, n_datasets=5, n_comparisons=10_000, position_bias=0.3, seed=0
        ),
        ("default",),
    ),
    "realistic, task sd 2": (
        replace(REALISTIC, task_sd=2.0, dataset_mean_sd=1.0),
        ("pair", "beta-binomial"),
    ),
    "realistic, task sd 3.5": (
        replace(REALISTIC, task_sd=3.5, dataset_mean_sd=1.75),
        ("pair", "beta-binomial"),
    ),
    # Between 3.5 and 7, for where beta-binomial cells' approx starts to fail.
    "realistic, task sd 5": (
        replace(REALISTIC, task_sd=5.0, dataset_mean_sd=2.5),
        ("beta-binomial", "beta-binomial-pair"),
    ),
    "realistic": (REALISTIC, ("pair", "beta-binomial", "beta-binomial-pair")),
}
SETTINGS = {
    "approx": bp.SamplerSettings(seed=0),
    "nuts": bp.SamplerSettings(chains=2, draws=300, tune=300, seed=0),
}
OUT = Path(__file__).parent / "results" / "approx_coverage.csv"


def truth_scale(simulation, model: str) -> float:
    """The unit of the model's mu in the simulation's: 1, or for beta-binomial cells the
    geometric mean over datasets of sqrt(mean s^2 (1 + pair_sd^2 / 2)) (module docstring)."""
    if resolve_spec(MODELS[model]).overdispersion != "beta-binomial":
        return 1.0
    truth = simulation.truth
    mean_square = (truth["sigma"] ** 2).groupby(truth["dataset"]).mean()
    widening = 1 + simulation.config.pair_sd**2 / 2
    return float(np.exp(np.mean(0.5 * np.log(mean_square * widening))))


def measure(case: str, config: bp.SimulationConfig, model: str, method: str) -> dict:
    simulation = bp.simulate(config)
    scale = truth_scale(simulation, model)
    truth = simulation.truth.set_index("task_id")["mu"] / scale
    row = {"case": case, "seed": config.seed, "model": model, "method": method}
    row["truth_scale"] = scale
    started = time.perf_counter()
    try:
        fitted = bp.fit(
            simulation.comparisons,
            simulation.tasks,
            model=MODELS[model],
            method=method,
            settings=SETTINGS[method],
            progressbar=False,
            log_likelihood=False,
        )
    except bp.FitError as refused:  # approx refuses pair effects, for what this measured
        return row | {"refused": str(refused)}
    table = fitted.utilities.set_index("task_id").join(truth)
    inside = (table["mu"] >= table["mu_low"]) & (table["mu"] <= table["mu_high"])
    return row | {
        "near_certain_share": fitted.diagnostics.measures.get("near_certain_share"),
        "coverage94": inside.mean(),
        "mean_sd": table["mu_sd"].mean(),
        "spearman": spearmanr(table["mu_mean"], table["mu"]).statistic,
        "slope": np.polyfit(table["mu"], table["mu_mean"], 1)[0],
        "passed": fitted.diagnostics.passed,
        "seconds": round(time.perf_counter() - started, 1),
        "load1": round(os.getloadavg()[0], 1),
    }


def save(row: dict) -> None:
    """Print `row` and merge it into OUT, replacing the row of the same case, simulation seed,
    model and method."""
    print(row, flush=True)
    key = ["case", "seed", "model", "method"]
    old = pd.read_csv(OUT) if OUT.exists() else pd.DataFrame(columns=key)
    old["seed"] = old["seed"].fillna(0) if "seed" in old else 0  # rows from before the option
    row = {"seed": 0} | row
    same = (old[key] == pd.Series(row)[key]).all(axis=1)
    merged = pd.concat([old[~same], pd.DataFrame([row])])
    merged = merged[key + [column for column in merged if column not in key]]
    write_atomically(OUT, merged.to_csv(index=False))


def real_agreement(path: Path, model: str) -> list[dict]:
    """No truth on real data: approx against NUTS (4 chains x 1,000 draws) on the same file, the
    share of NUTS's posterior means of mu inside approx's 94% intervals (`coverage94`), the
    median ratio of their posterior sds (`sd_ratio`) and the Spearman between their means."""
    comparisons = pd.read_csv(path)
    fits, rows = {}, []
    for method, settings in (("approx", SETTINGS["approx"]), ("nuts", bp.SamplerSettings())):
        started = time.perf_counter()
        fits[method] = bp.fit(
            comparisons, model=MODELS[model], method=method, settings=settings, progressbar=False,
            log_likelihood=False,
        )  # fmt: skip
        seconds = round(time.perf_counter() - started, 1)
        rows.append({"case": "real", "model": model, "method": method, "seconds": seconds})
        rows[-1]["load1"] = round(os.getloadavg()[0], 1)
    approx, nuts = (fits[m].utilities.set_index("task_id") for m in ("approx", "nuts"))
    inside = (nuts["mu_mean"] >= approx["mu_low"]) & (nuts["mu_mean"] <= approx["mu_high"])
    for row, method in zip(rows, ("approx", "nuts"), strict=True):
        row |= {
            "near_certain_share": fits[method].diagnostics.measures.get("near_certain_share"),
            "mean_sd": fits[method].utilities["mu_sd"].mean(),
            "passed": fits[method].diagnostics.passed,
        }
    rows[0] |= {
        "coverage94": inside.mean(),
        "sd_ratio": (approx["mu_sd"] / nuts["mu_sd"]).median(),
        "spearman": spearmanr(approx["mu_mean"], nuts.loc[approx.index, "mu_mean"]).statistic,
    }
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--models", type=lambda text: text.split(","), default=list(MODELS))
    parser.add_argument("--methods", type=lambda text: text.split(","), default=list(SETTINGS))
    parser.add_argument("--seed", type=int, default=0, help="the simulations' seed")
    parser.add_argument("--real", type=Path, default=None, help="a comparisons file (no truth)")
    args = parser.parse_args()
    if args.real:
        for model in (m for m in args.models if m != "pair"):
            for row in real_agreement(args.real, model):
                save(row)
    for case in args.cases if not args.real else ():
        config, models = CASES[case]
        for model in (m for m in models if m in args.models):
            for method in args.methods:
                save(measure(case, replace(config, seed=args.seed), model, method))
    results = pd.read_csv(OUT)
    print(results.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
