"""Simulation-based calibration: draw parameters from the prior, simulate choices (and refusals)
from the model itself, fit, and record each true value's rank among the posterior draws.

For a calibrated model and sampler the ranks are uniform on 0..n_draws.
"""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterable, Iterator

import numpy as np
import pandas as pd
from scipy.stats import chi2, chisquare

from bayespref.data.choice_data import ChoiceData, load_choice_data
from bayespref.data.simulation import simulate
from bayespref.inference.settings import SamplerSettings
from bayespref.model.spec import ModelSpec, resolve_spec
from bayespref.posterior import draws as post
from bayespref.workflows.fitting import fit_data

# Every reported parameter family a spec can have; those a spec lacks are skipped.
RANKED = (
    "position_bias",
    "position_bias_dataset",
    "position_spread",
    "position_bias_pair",
    "position_pair_spread",
    "dataset_mean",
    "dataset_spread",
    "sigma_dataset",
    "mu",
    "condition_shift",
    "condition_dataset_spread",
    "condition_task_spread",
    "refusal_mean",
    "refusal_spread",
    "refusal_utility_corr",
    "lapse",
    "concentration_dataset",
)
# Zero sums over the last axis (sigma_dataset: exp of a zero-sum vector; condition_shift: over
# datasets, in each shifted condition).
ZERO_SUM = ("dataset_mean", "sigma_dataset", "condition_shift")
# Conditions in the design of a spec with condition shifts: the reference and two shifted.
SHIFTED_DESIGN_CONDITIONS = 3
# Replication r of a run with seed s draws with seed s * SEED_STRIDE + r: runs with different
# seeds share no draws (up to SEED_STRIDE replications), and seed 0 gives seeds 0, 1, 2, ...
SEED_STRIDE = 1_000_003


def sbc_design(
    n_tasks: int,
    n_datasets: int,
    n_comparisons: int,
    n_conditions: int,
    seed: int,
    repeats: int | None = None,
    one_order: bool = False,
) -> ChoiceData:
    """Which pairs are shown, in which order and condition; each cell's n counts all its trials
    (the outcomes are replaced by draws from the model). Pairs repeat `repeats` times (default:
    at least twice, enough to reach n_comparisons), in both orders or, with `one_order`, each
    in one order as in the realistic preset."""
    max_pairs = n_tasks * (n_tasks - 1) // 2
    simulation = simulate(
        n_tasks=n_tasks,
        n_datasets=n_datasets,
        n_comparisons=n_comparisons,
        repeats=repeats or max(2, -(-n_comparisons // max_pairs)),
        one_order=one_order,
        condition_shifts=((0.0,) * n_datasets,) * (n_conditions - 1),
        seed=seed,
    )
    design = load_choice_data(simulation.comparisons, simulation.tasks)
    cells = design.cells
    return dataclasses.replace(design, cells=cells.assign(n=cells["n"] + cells["r"], k=0, r=0))


def _draw_values(group, name: str) -> np.ndarray:
    """One draw's values (chain and draw axes dropped)."""
    return group[name].values.reshape(group[name].shape[2:])


def prior_draw(spec: ModelSpec, design: ChoiceData, seed: int) -> tuple[dict, ChoiceData]:
    """Every variable of one draw from the prior (the ranked families among them), and the
    design's cells with outcomes simulated from the model: each cell's refusals among all its
    trials first (when modelled), then the first-position wins among the trials not refused."""
    import pymc as pm

    from bayespref.model.builder import build_model

    model = build_model(spec, design)
    prior = pm.sample_prior_predictive(draws=1, model=model, random_seed=seed)
    predictive = prior["prior_predictive"]
    cells = design.cells
    if "refused" in predictive:
        refused = _draw_values(predictive, "refused").astype(np.int64)
        cells = cells.assign(n=cells["n"] - refused, r=refused)
        with model:
            pm.set_data({"n_trials": cells["n"].to_numpy(np.int64)})
        predictive = pm.sample_posterior_predictive(
            prior["prior"],
            model=model,
            var_names=["first_chosen"],
            freeze_vars=[variable.name for variable in model.free_RVs],
            random_seed=np.random.default_rng([seed, 1]),
            progressbar=False,
        )["posterior_predictive"]
    cells = cells.assign(k=_draw_values(predictive, "first_chosen").astype(np.int64))
    truth = {name: _draw_values(prior["prior"], name) for name in prior["prior"].data_vars}
    return truth, dataclasses.replace(design, cells=cells)


def _ranks(truth: dict[str, np.ndarray], fitted, thin_to: int) -> list[dict]:
    posterior = fitted.posterior
    step = max(1, post.n_samples(posterior) // thin_to)
    rows = []
    for name in (name for name in RANKED if name in truth):
        values = truth[name]
        draws = post.draws(posterior, name).reshape(-1, post.n_samples(posterior))[:, ::step]
        # The last entry of a zero-sum vector follows from the others (with two datasets it
        # mirrors the first): ranking it would count one rank twice in the uniformity test.
        kept = np.ones(np.shape(values), dtype=bool)
        if name in ZERO_SUM and np.ndim(values) and np.shape(values)[-1] > 1:
            kept[..., -1] = False
        values, draws = np.asarray(values)[kept], draws[kept.ravel()]
        for index, value in enumerate(values):
            rank = int(np.sum(draws[index, :thin_to] < value))
            rows.append(
                {
                    "parameter": name,
                    "index": index,
                    "rank": rank,
                    "n_draws": thin_to,
                    "true_value": float(value),
                }
            )
    return rows


def replication_ranks(
    model: str | ModelSpec | None = None,
    replications: Iterable[int] = range(20),
    n_tasks: int = 12,
    n_datasets: int = 2,
    n_comparisons: int = 120,
    settings: SamplerSettings | None = None,
    thin_to: int = 99,
    seed: int = 0,
    n_conditions: int | None = None,
    repeats: int | None = None,
    one_order: bool = False,
) -> Iterator[pd.DataFrame]:
    """Ranks of the true parameters, one table per replication with a row per (parameter,
    index), with the true value and the replication's divergent transitions. Each replication
    has its own seeds (see SEED_STRIDE), so a run can go on from any one.

    `n_conditions` defaults to 3 for a spec with condition shifts (so the shifts are informed)
    and 1 otherwise; `repeats` and `one_order` shape the design (`sbc_design`)."""
    import jax

    spec = resolve_spec(model)
    if n_conditions is None:
        n_conditions = SHIFTED_DESIGN_CONDITIONS if spec.conditions == "shifts" else 1
    settings = settings or SamplerSettings(chains=2, draws=250, tune=250, seed=seed)
    design = sbc_design(n_tasks, n_datasets, n_comparisons, n_conditions, seed, repeats, one_order)
    for replication in replications:
        truth, data = prior_draw(spec, design, seed * SEED_STRIDE + replication)
        fitted = fit_data(
            data,
            spec,
            dataclasses.replace(settings, seed=settings.seed * SEED_STRIDE + replication),
            progressbar=False,
            log_likelihood=False,
        )
        rows = pd.DataFrame(_ranks(truth, fitted, thin_to))
        rows.insert(0, "replication", replication)
        rows["divergences"] = fitted.diagnostics.measures["divergences"]
        yield rows
        # Every fit compiles its own functions: without this a long run grows by ~0.1 GB each.
        del fitted
        jax.clear_caches()
        gc.collect()


def sbc_ranks(
    model: str | ModelSpec | None = None, replications: int = 20, **options
) -> pd.DataFrame:
    """Ranks of the true parameters, one row per (replication, parameter, index); `options` are
    those of `replication_ranks`."""
    return pd.concat(
        list(replication_ranks(model, range(replications), **options)), ignore_index=True
    )


def design_effect(bin_of_rank: pd.Series, replication: pd.Series, bins: int) -> float:
    """How much more bin counts vary than independent ranks would: the mean over bins of the
    between-replication variance of the count over its binomial variance (Rao and Scott's
    first-order correction). Entries of one family in one replication share that replication's
    data, so their ranks are dependent; 1 when each replication ranks a single entry."""
    per_replication = pd.crosstab(replication, bin_of_rank).reindex(
        columns=range(bins), fill_value=0
    )
    n_replications, total = len(per_replication), int(per_replication.to_numpy().sum())
    if total == n_replications or n_replications < 2:
        return 1.0
    between = per_replication.var(axis=0, ddof=1).to_numpy() * n_replications
    binomial = total * (1 / bins) * (1 - 1 / bins)
    return float(np.mean(between / binomial))


def uniformity(ranks: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Per parameter family: a chi-square test of rank uniformity over `bins` equal bins, and the
    same test with the statistic divided by the family's design effect (at least 1), which
    keeps its false-alarm rate when a replication's entries have dependent ranks."""
    rows = []
    for name, group in ranks.groupby("parameter", sort=False):
        edges = np.linspace(0, group["n_draws"].iloc[0] + 1, bins + 1)
        bin_of_rank = pd.Series(np.digitize(group["rank"], edges[1:-1]), index=group.index)
        counts = np.bincount(bin_of_rank, minlength=bins)
        test = chisquare(counts)
        effect = max(1.0, design_effect(bin_of_rank, group["replication"], bins))
        rows.append(
            {
                "parameter": name,
                "n": len(group),
                "p_value": test.pvalue,
                "design_effect": effect,
                "p_value_clustered": chi2.sf(test.statistic / effect, bins - 1),
                "counts": counts.tolist(),
            }
        )
    return pd.DataFrame(rows)
