"""Fit speed and accuracy at research sizes; prints a table and writes benchmarks/results/fit.csv.

Each (size, method) runs in its own process so that peak memory is its own. Methods:
  bayespref  the default model with NumPyro NUTS, default settings (4 chains x 1000 draws, float32),
             without the pointwise log-likelihood (a separate, optional cost at large sizes);
             benchmarks/precision.py checks that float32 gives the float64 posterior
  bayespref64  the same in float64 (precision "float64")
  approx     the same model, `--method approx` (Laplace, bayespref/inference/approx.py)
  trusted    bayespref NUTS warm-started from the Laplace approximation (`init="laplace"`), short
             tuning, drawing blocks until every reported quantity passes the trust thresholds
             (`until_trusted=True`; TRUSTED below)
  pymc_numpyro  stock `pm.sample(nuts_sampler="numpyro")` on the same PyMC model (4 chains,
             1000 + 1000, target_accept 0.9)
  pymc       the same PyMC model with PyMC's own NUTS sampler (4 chains, 2 at a time on 2 cores)
  nutpie     the same PyMC model with nutpie (numba backend), default settings
  mle        the reference maximum-likelihood Thurstone fit (L-BFGS), the speed floor
A method that would take over 30 minutes at a size is skipped and marked so: either it is in
OVER_30_MIN (from measured scaling, below) or its process runs past --limit-minutes.
Columns: wall time including compilation, min ESS_bulk over mu, ESS_bulk per second, max r_hat,
divergences, Pearson and Spearman of mu against truth, 90% interval coverage of mu, peak memory,
and time to trust: `trust_s`, the wall time until every reported quantity has r_hat <= 1.01 and
ess_bulk >= 400 (checks/convergence.py), with `trust_draws` draws per chain. For `trusted` it is
the fit's own wall time (it stops there); for fixed-draw NUTS rows it is the wall time less the
share of sampling spent on draws after the first `trust_draws` that pass (checked every 50
draws): the best a fixed-draw run could have done had it stopped in time. Empty when the whole
run never passes. When `trusted` runs at a size with `bayespref` or `pymc_numpyro`, a row
`BASELINE/trusted` follows with the ratios of their wall_s and trust_s (how many times faster
`trusted` was in the same run).
Usage:
    python benchmarks/run.py --sizes 500x10000,1000x30000 --methods bayespref,pymc,mle [--out CSV]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

COLUMNS = [
    "size",
    "method",
    "wall_s",
    "min_ess_bulk",
    "ess_per_s",
    "max_rhat",
    "divergences",
    "pearson",
    "spearman",
    "coverage90",
    "peak_mb",
    "trust_s",
    "trust_draws",
]  # then `note` (why a row is empty) and `device`
METHODS = ("bayespref", "bayespref64", "trusted", "approx", "pymc_numpyro", "pymc", "nutpie", "mle")
# The `trusted` method's settings: tuning steps and the block of draws per chain.
TRUSTED = {"tune": 100, "draws": 100}
_TRUST_STEP = 50
RATIO_NOTE = "times faster: the baseline's seconds over trusted's, same run"
# Measured on 2 cores: NUTS cost grows with cells x gradient evaluations per draw. bayespref
# NUTS in float64 took 183 s at 1000x30000 and 832 s at 3000x117000 (results/fit_nuts_large.csv),
# so 10000x332000, with 2.8x the cells and 3.3x the parameters, passes 30 minutes; in float32 it
# took 1809 s (results/fit_nuts_10000_float32.csv). PyMC's sampler and nutpie are slower still.
# Run them anyway with --no-skip.
OVER_30_MIN = {  # on 2 CPU cores; benchmarks/gpu.sh runs them all (--no-skip)
    ("bayespref", "10000x332000"),
    ("bayespref64", "10000x332000"),
    ("pymc", "1000x30000"),
    ("pymc", "3000x117000"),
    ("pymc", "10000x332000"),
    ("nutpie", "3000x117000"),
    ("nutpie", "10000x332000"),
}


def _accuracy(estimate: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    from scipy.stats import pearsonr, spearmanr

    return {
        "pearson": float(pearsonr(estimate, truth)[0]),
        "spearman": float(spearmanr(estimate, truth)[0]),
    }


def _divergences(idata) -> float:
    """Divergent transitions; NaN for the approximation, which has no sampler."""
    if "sample_stats" not in idata.children:
        return float("nan")
    return int(idata["sample_stats"]["diverging"].values.sum())


def posterior_row(idata, tasks: pd.DataFrame, truth: pd.DataFrame, wall: float) -> dict:
    """The table's columns for a posterior (also used by precision.py)."""
    import arviz as az

    from bayespref.posterior.draws import draws

    mu = draws(idata["posterior"].to_dataset(), "mu")
    true_mu = truth.set_index("task_id").loc[tasks["task_id"], "mu"].to_numpy()
    low, high = np.quantile(mu, [0.05, 0.95], axis=1)
    min_ess = float(az.ess(idata, var_names=["mu"], method="bulk")["mu"].min())
    return {
        "wall_s": wall,
        "min_ess_bulk": min_ess,
        "ess_per_s": min_ess / wall,
        "max_rhat": float(az.rhat(idata, var_names=["mu"])["mu"].max())
        if idata["posterior"].sizes["chain"] > 1
        else float("nan"),
        "divergences": _divergences(idata),
        **_accuracy(mu.mean(axis=1), true_mu),
        "coverage90": float(np.mean((true_mu >= low) & (true_mu <= high))),
    }


def _trust_draws(idata) -> int | None:
    """The fewest draws per chain (a multiple of _TRUST_STEP, or all) whose prefix passes the r_hat
    and ESS thresholds over every reported quantity; None if even all of them do not."""
    from bayespref.checks.convergence import THRESHOLDS, convergence, diagnose

    total = idata["posterior"].sizes["draw"]
    for n in [*range(_TRUST_STEP, total, _TRUST_STEP), total]:
        prefix = idata.isel(draw=slice(0, n))
        measures = diagnose(prefix, *convergence(prefix)).measures
        if (
            measures["max_r_hat"] <= THRESHOLDS["r_hat"]
            and measures["min_ess_bulk"] >= THRESHOLDS["ess_bulk"]
        ):
            return n
    return None


def trust_columns(idata, wall: float, sampling_s: float, tune: int) -> dict:
    """trust_s and trust_draws of a fixed-draw run (module docstring)."""
    n = _trust_draws(idata)
    if n is None:
        return {}
    total = idata["posterior"].sizes["draw"]
    unused = sampling_s * (total - n) / (tune + total)
    return {"trust_s": wall - unused, "trust_draws": n}


def parse_size(size: str) -> tuple[int, int]:
    """Tasks and trials of a size written 'TASKSxTRIALS'."""
    n_tasks, n_trials = (int(x) for x in size.split("x"))
    return n_tasks, n_trials


def simulate_size(size: str, seed: int, **terms):
    """The benchmarks' simulated data at a size 'TASKSxTRIALS', with any further simulation
    `terms` (also used by gradient.py and precision.py)."""
    import bayespref as bp

    n_tasks, n_trials = parse_size(size)
    return bp.simulate(
        n_tasks=n_tasks,
        n_datasets=5,
        n_comparisons=n_trials,
        position_bias=0.3,
        seed=seed,
        **terms,
    )


def write_table(table: pd.DataFrame, out: Path) -> None:
    """Print a results table and write it to `out` (CSV)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"wrote {out}")


def measure(size: str, method: str, seed: int) -> dict:
    """One (size, method) in this process."""
    import bayespref as bp

    simulation = simulate_size(size, seed)
    started = time.perf_counter()
    if method == "mle":
        from bayespref.analysis.baselines import fit_reference

        reference = fit_reference(simulation.comparisons)
        wall = time.perf_counter() - started
        truth = simulation.truth.set_index("task_id").loc[reference.task_ids, "mu"].to_numpy()
        row = {"wall_s": wall, **_accuracy(reference.mu, truth)}
    elif method in ("bayespref", "bayespref64", "approx", "trusted"):
        options = {"precision": "float64" if method == "bayespref64" else "auto"}
        if method == "trusted":
            options |= {"init": "laplace", "until_trusted": True, **TRUSTED}
        result = bp.fit(
            simulation.comparisons,
            simulation.tasks,
            settings=bp.SamplerSettings(**options),
            progressbar=False,
            log_likelihood=False,
            method="approx" if method == "approx" else "nuts",
        )
        wall = time.perf_counter() - started
        row = posterior_row(result.idata, result.tasks, simulation.truth, wall)
        sampler = result.diagnostics.sampler
        if method == "approx":  # where the time went
            info = result.diagnostics.measures
            row["note"] = (
                f"optimizer {info['seconds_optimizing']:.0f} s ({info['optimizer_iterations']} "
                f"iterations), Hessian {info['seconds_hessian']:.0f} s"
            )
        elif method == "trusted":
            if sampler["target_reached"]:
                row |= {"trust_s": wall, "trust_draws": sampler["draws_per_chain"]}
            row["note"] = (
                f"warm start {sampler['seconds_warm_start']:.0f} s, sampling "
                f"{sampler['seconds_sampling']:.0f} s in {sampler['blocks']} blocks"
            )
        else:
            row |= trust_columns(result.idata, wall, sampler["seconds_sampling"], sampler["tune"])
    elif method == "pymc_numpyro":
        import pymc as pm

        from bayespref.model.builder import build_model

        data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
        with build_model(bp.resolve_spec(None), data):
            idata = pm.sample(
                chains=4,
                random_seed=seed,
                progressbar=False,
                target_accept=0.9,
                nuts_sampler="numpyro",
            )
        wall = time.perf_counter() - started
        row = posterior_row(idata, data.tasks, simulation.truth, wall)
        sampling = float(idata["posterior"].attrs["sampling_time"])
        row |= trust_columns(idata, wall, sampling, int(idata["posterior"].attrs["tuning_steps"]))
    elif method in ("pymc", "nutpie"):
        import pymc as pm

        from bayespref.model.builder import build_model

        data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
        # PyMC 6 picks nutpie by itself when it is installed: name the sampler explicitly.
        options = {"nuts_sampler": method} | ({"cores": 2} if method == "pymc" else {})
        with build_model(bp.resolve_spec(None), data):
            idata = pm.sample(random_seed=seed, progressbar=False, target_accept=0.9, **options)
        wall = time.perf_counter() - started
        row = posterior_row(idata, data.tasks, simulation.truth, wall)
    else:
        raise SystemExit(f"unknown method '{method}'; known: {', '.join(METHODS)}")
    from bayespref.inference.device import describe

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "method": method, **row, "peak_mb": peak, "device": describe()}


def _run_one(size: str, method: str, seed: int, limit_minutes: float) -> dict:
    command = [sys.executable, __file__, "--one", size, method, "--seed", str(seed)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=60 * limit_minutes)
    except subprocess.TimeoutExpired:
        return {"size": size, "method": method, "note": f"skipped: over {limit_minutes:g} min"}
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return {"size": size, "method": method, "note": "failed (see stderr)"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def ratio_rows(rows: list[dict]) -> list[dict]:
    """Per size, how many times faster `trusted` was than each fixed-draw NUTS baseline measured
    in the same run: the baseline's wall_s and trust_s over trusted's."""
    ratios = []
    for size in dict.fromkeys(row["size"] for row in rows):
        measured = {row["method"]: row for row in rows if row["size"] == size and "wall_s" in row}
        if "trusted" not in measured:
            continue
        fast = measured["trusted"]
        for baseline in ("bayespref", "pymc_numpyro"):
            if baseline in measured:
                slow = measured[baseline]
                ratios.append(
                    {"size": size, "method": f"{baseline}/trusted", "note": RATIO_NOTE}
                    | {c: slow.get(c, np.nan) / fast.get(c, np.nan) for c in ("wall_s", "trust_s")}
                )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500x10000,1000x30000")
    parser.add_argument("--methods", default="bayespref,mle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit-minutes", type=float, default=30.0)
    parser.add_argument("--no-skip", action="store_true", help="Run the OVER_30_MIN cases too.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "fit.csv")
    parser.add_argument("--one", nargs=2, metavar=("SIZE", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(*args.one, args.seed)))
        return
    rows = []
    for size in args.sizes.split(","):
        for method in args.methods.split(","):
            if (method, size) in OVER_30_MIN and not args.no_skip:
                rows.append({"size": size, "method": method, "note": "skipped: over 30 min"})
            else:
                rows.append(_run_one(size, method, args.seed, args.limit_minutes))
            print(rows[-1], flush=True)
    rows += ratio_rows(rows)
    write_table(pd.DataFrame(rows).reindex(columns=[*COLUMNS, "note", "device"]), args.out)


if __name__ == "__main__":
    main()
