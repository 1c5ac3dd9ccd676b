"""Does NUTS in float32 give the float64 posterior? And how much faster is it on this machine?

For each size, a model (the default unless --model) is fitted three times per round on the same
simulated data with the default settings (4 chains x 1,000 draws): float64, float32, float64
again, each with a seed of its own (the machine's speed drifts, so each round compares them side
by side). Against the first fit, for every posterior quantity (each task's mu, the dataset terms,
position bias), the difference of posterior means in units of their joint Monte Carlo standard
error (z) and the ratio of posterior sds. The second float64 fit is the yardstick: quantities
share terms (a dataset's mean moves all its tasks), so z strays beyond 2 in clusters, by seed
alone. Also run.py's columns for each fit (wall time, ESS, r_hat, accuracy, coverage). On the
first fit's draws, the cells' log-likelihood summed in float32 against float64, as float32 NUTS
sums it: the sd of the difference over draws says how far float32 rounding can reweight the
posterior (for the default likelihood only: probit, no lapse, refusals not modelled, conditions
pooled).
Data (--data): `default`, run.py's simulation; `realistic`, SimulationConfig.realistic's nearly
deterministic choices (utility spreads of 7 noise sds: z reaches the far tails, where float32 has
the fewest digits); `full`, every term the `full` model has (refusals, a second condition,
per-dataset position bias, lapses).
Writes benchmarks/results/precision.csv.
Usage: python benchmarks/precision.py [--sizes 500x10000] [--repeats 2] [--model full --data full]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
from run import parse_size, posterior_row, simulate_size, write_table

import bayespref as bp
from bayespref.data.simulation import Simulation, SimulationConfig
from bayespref.model.spec import ModelSpec
from bayespref.posterior.draws import reported_variables

# float32 between two float64 fits: their times bracket it, and the second float64 fit measures
# how far z strays between two runs that differ only in their seed.
ROUND = ("float64", "float32", "float64")


def _simulate(size: str, data: str) -> Simulation:
    if data == "default":
        return simulate_size(size, seed=0)
    if data == "realistic":
        n_tasks, n_trials = parse_size(size)
        config = SimulationConfig.realistic(n_tasks=n_tasks)
        return bp.simulate(replace(config, n_comparisons=n_trials))
    return simulate_size(
        size,
        seed=0,
        position_bias_by_dataset=(0.5, 0.3, 0.1, -0.1, -0.3),
        refusal_rate=0.03,
        condition_shifts=((0.5, -0.5, 0.0, 0.3, -0.3),),
        lapse_rate=0.05,
    )


def _default_likelihood(spec: ModelSpec) -> bool:
    """Whether likelihood_gap's formula is the model's likelihood."""
    return (spec.link, spec.lapse, spec.refusal, spec.conditions) == (
        "probit",
        "none",
        "excluded",
        "pooled",
    )


def _fit(
    simulation: Simulation, spec: ModelSpec, precision: str, seed: int
) -> tuple[bp.Fit, float]:
    started = time.perf_counter()
    fitted = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        model=spec,
        settings=bp.SamplerSettings(seed=seed, precision=precision),
        progressbar=False,
        log_likelihood=False,
    )
    return fitted, time.perf_counter() - started


def _flat(stat, names: list[str]) -> np.ndarray:
    return np.concatenate([np.ravel(stat[name].values) for name in names])


def agreement(reference: bp.Fit, other: bp.Fit) -> dict[str, float | str]:
    """z of the difference in posterior means, and the ratio of posterior sds, over every
    reported quantity (constants, with no spread, left out)."""
    posterior = reference.idata["posterior"].to_dataset()
    names = reported_variables(posterior)
    labels = np.concatenate(
        [[f"{name}[{i}]" for i in range(posterior[name][0, 0].size)] for name in names]
    )
    mean, sd, mcse = {}, {}, {}
    for label, fitted in (("reference", reference), ("other", other)):
        posterior = fitted.idata["posterior"].to_dataset()[names].astype(np.float64)
        mean[label] = _flat(posterior.mean(("chain", "draw")), names)
        sd[label] = _flat(posterior.std(("chain", "draw")), names)
        mcse[label] = _flat(az.mcse(fitted.idata, var_names=names, method="mean"), names)
    varying = sd["reference"] > 0
    z = (mean["other"] - mean["reference"]) / np.hypot(mcse["other"], mcse["reference"])
    z, ratio, labels = z[varying], (sd["other"] / sd["reference"])[varying], labels[varying]
    return {
        "quantities": int(varying.sum()),
        "max_abs_z": float(np.max(np.abs(z))),
        "max_abs_z_at": labels[np.argmax(np.abs(z))],
        "share_abs_z_over_2": float(np.mean(np.abs(z) > 2)),
        "sd_ratio_median": float(np.median(ratio)),
        "sd_ratio_min": float(np.min(ratio)),
        "sd_ratio_max": float(np.max(ratio)),
    }


def likelihood_gap(fitted: bp.Fit, simulation: Simulation, draws: int = 200) -> dict[str, float]:
    """The cells' log-likelihood at posterior draws, summed in float32 and in float64: the sd of
    their difference over draws is the part of float32's rounding that could reweight the
    posterior (a constant difference cancels), its largest deviation from its mean what the
    reweighting can reach. In nats."""
    import jax
    import jax.numpy as jnp

    from bayespref.model.choice import first_choice_z
    from bayespref.model.likelihood import probit_binomial_cells
    from bayespref.posterior import draws as post

    cells = bp.load_choice_data(simulation.comparisons, simulation.tasks).cells
    posterior = fitted.idata["posterior"].to_dataset()
    posterior = posterior.thin({"draw": -(-post.n_samples(posterior) // draws)})
    task_dataset = fitted.tasks["dataset_idx"].to_numpy()
    mu, sigma = post.draws(posterior, "mu"), post.task_sigma(posterior, task_dataset)
    position, scope = post.position(posterior)
    totals = {}
    for dtype in (np.float32, np.float64):
        with jax.enable_x64(dtype == np.float64):
            z = first_choice_z(
                *(np.asarray(values, dtype) for values in (mu, sigma, position)),
                cells["a_idx"].to_numpy(),
                cells["b_idx"].to_numpy(),
                task_dataset,
                scope,
            )
            k, n = (jnp.asarray(cells[column].to_numpy(dtype)[:, None]) for column in "kn")
            totals[dtype] = np.asarray(probit_binomial_cells(jnp.asarray(z), k, n).sum(axis=0))
    gap = totals[np.float32].astype(np.float64) - totals[np.float64]
    deviation = gap - gap.mean()
    return {"loglik_gap_sd": float(np.std(gap)), "loglik_gap_max": float(np.max(np.abs(deviation)))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500x10000")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="a model name or spec file")
    parser.add_argument("--data", choices=("default", "realistic", "full"), default="default")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "precision.csv"
    )
    args = parser.parse_args()
    spec = bp.resolve_spec(args.model)
    rows = []
    for size in args.sizes.split(","):
        simulation = _simulate(size, args.data)
        for repeat in range(args.repeats):
            fits = []
            for position, precision in enumerate(ROUND):
                # A seed of its own per fit, so that z compares independent runs.
                seed = args.seed + len(ROUND) * repeat + position
                fitted, wall = _fit(simulation, spec, precision, seed)
                row = {"size": size, "model": spec.name, "data": args.data, "repeat": repeat}
                row |= {"precision": precision, "seed": seed}
                row |= posterior_row(fitted.idata, fitted.tasks, simulation.truth, wall)
                if fits:
                    row |= agreement(fits[0], fitted)
                elif _default_likelihood(spec):
                    row |= likelihood_gap(fitted, simulation)
                print(row, flush=True)
                rows.append(row)
                fits.append(fitted)
    write_table(pd.DataFrame(rows), args.out)


if __name__ == "__main__":
    main()
