"""Simulation-based calibration: draw parameters from the prior, simulate choices from the model
itself, fit, and record each true value's rank among the posterior draws.

For a calibrated model and sampler the ranks are uniform on 0..n_draws.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from scipy.stats import chisquare

from bayespref import posterior as post
from bayespref.data import ChoiceData, load_choice_data
from bayespref.fit import SamplerSettings, fit_data
from bayespref.simulate import simulate
from bayespref.spec import ModelSpec, resolve_spec

RANKED = ("position_bias", "dataset_mean", "dataset_spread", "sigma_dataset", "mu")


def _design(n_tasks: int, n_datasets: int, n_comparisons: int, seed: int) -> ChoiceData:
    """Which pairs are shown, in which order (the outcomes are replaced by prior predictions)."""
    simulation = simulate(
        n_tasks=n_tasks, n_datasets=n_datasets, n_comparisons=n_comparisons, repeats=2, seed=seed
    )
    return load_choice_data(simulation.comparisons, simulation.tasks)


def _ranks(truth: dict[str, np.ndarray], fitted, thin_to: int) -> list[dict]:
    posterior = fitted.posterior
    step = max(1, post.n_samples(posterior) // thin_to)
    rows = []
    for name in RANKED:
        if name not in posterior:
            continue
        draws = post.draws(posterior, name).reshape(-1, post.n_samples(posterior))[:, ::step]
        for index, value in enumerate(np.ravel(truth[name])):
            rank = int(np.sum(draws[index, :thin_to] < value))
            rows.append({"parameter": name, "index": index, "rank": rank, "n_draws": thin_to})
    return rows


def sbc_ranks(
    model: str | ModelSpec | None = None,
    replications: int = 20,
    n_tasks: int = 12,
    n_datasets: int = 2,
    n_comparisons: int = 120,
    settings: SamplerSettings | None = None,
    thin_to: int = 99,
    seed: int = 0,
) -> pd.DataFrame:
    """Ranks of the true parameters, one row per (replication, parameter, index)."""
    import pymc as pm

    from bayespref.model import build_model

    spec = resolve_spec(model)
    settings = settings or SamplerSettings(chains=2, draws=250, tune=250, seed=seed)
    design = _design(n_tasks, n_datasets, n_comparisons, seed)
    rows = []
    for replication in range(replications):
        prior = pm.sample_prior_predictive(
            draws=1, model=build_model(spec, design), random_seed=seed + replication
        )
        k = prior["prior_predictive"]["first_chosen"].values.reshape(-1)
        truth = {
            name: prior["prior"][name].values.reshape(prior["prior"][name].shape[2:])
            for name in RANKED
            if name in prior["prior"]
        }
        data = dataclasses.replace(design, cells=design.cells.assign(k=k))
        fitted = fit_data(
            data,
            spec,
            dataclasses.replace(settings, seed=settings.seed + replication),
            progressbar=False,
            log_likelihood=False,
        )
        for row in _ranks(truth, fitted, thin_to):
            rows.append({"replication": replication, **row})
    return pd.DataFrame(rows)


def uniformity(ranks: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Per parameter family: a chi-square test of rank uniformity over `bins` equal bins."""
    rows = []
    for name, group in ranks.groupby("parameter", sort=False):
        edges = np.linspace(0, group["n_draws"].iloc[0] + 1, bins + 1)
        counts, _ = np.histogram(group["rank"], bins=edges)
        rows.append(
            {
                "parameter": name,
                "n": len(group),
                "p_value": chisquare(counts).pvalue,
                "counts": counts.tolist(),
            }
        )
    return pd.DataFrame(rows)
