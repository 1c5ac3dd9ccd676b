"""P(first shown is chosen) for new pairs, from posterior draws (noise and position included),
and the probability replicated cells share (analysis for posterior predictive checks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayespref.analysis.summaries import INTERVAL_TAILS
from bayespref.errors import DataError
from bayespref.io.locations import listing, where
from bayespref.io.tables import read_table, require_columns, text_column
from bayespref.model.choice import first_choice_probability, first_choice_z
from bayespref.model.repeats import (
    BETA_BINOMIAL,
    PAIR_EFFECTS,
    cell_log_concentration,
    pair_index,
    shared_probability,
)
from bayespref.posterior import draws as post
from bayespref.posterior.fit import Fit, load_fit

_CHUNK = 4096  # rows per block, so (rows x draws) arrays stay small


def _task_indices(pairs: pd.DataFrame, fit: Fit, source: str) -> tuple[np.ndarray, np.ndarray]:
    index_of = pd.Series(np.arange(len(fit.tasks)), index=fit.tasks["task_id"].to_numpy())
    ids = {column: text_column(pairs, column, source) for column in ("task_a", "task_b")}
    unknown = {column: ~values.isin(index_of.index).to_numpy() for column, values in ids.items()}
    names = sorted(set().union(*(set(ids[c][unknown[c]]) for c in ids)))
    if names:
        row, column = min(
            (int(np.flatnonzero(mask)[0]) + 1, c) for c, mask in unknown.items() if mask.any()
        )
        raise DataError(
            f"{where(source, row, column)}: {len(names)} tasks were not in the fit: "
            f"{listing(names, 10)}"
        )
    same = (ids["task_a"] == ids["task_b"]).to_numpy()
    if same.any():
        row = int(np.flatnonzero(same)[0])
        raise DataError(
            f"{where(source, row + 1, 'task_b')}: task '{ids['task_b'].iloc[row]}' is paired "
            f"with itself ({int(same.sum())} such rows)"
        )
    return index_of.reindex(ids["task_a"]).to_numpy(), index_of.reindex(ids["task_b"]).to_numpy()


def predict(fit: Fit | str | Path, pairs: pd.DataFrame | str | Path) -> pd.DataFrame:
    """The input rows plus `p_first_mean`, `p_first_low`, `p_first_high` (94% interval)."""
    fit = fit if isinstance(fit, Fit) else load_fit(fit)
    source = "<pairs>" if isinstance(pairs, pd.DataFrame) else str(pairs)
    frame = pairs.copy() if isinstance(pairs, pd.DataFrame) else read_table(pairs)
    require_columns(frame, ("task_a", "task_b"), source)
    a_idx, b_idx = _task_indices(frame, fit, source)

    conditions = _condition_indices(frame, fit, source)
    mean, low, high = (np.empty(len(frame)) for _ in range(3))
    for rows, probability in first_choice_draws(fit, a_idx, b_idx, conditions):
        mean[rows] = probability.mean(axis=1)
        low[rows], high[rows] = np.quantile(probability, INTERVAL_TAILS, axis=1)
    return frame.assign(p_first_mean=mean, p_first_low=low, p_first_high=high)


def _condition_indices(frame: pd.DataFrame, fit: Fit, source: str) -> np.ndarray:
    """Each row's condition index; rows without a condition take the reference condition. A
    fit that pools its conditions gives every condition it saw the same prediction."""
    if "condition" not in frame.columns:
        return np.zeros(len(frame), dtype=np.int64)
    names = text_column(frame, "condition", source, allow_empty=True)
    names = names.where(names != "", fit.conditions[0])
    unknown = ~names.isin(fit.conditions).to_numpy()
    if unknown.any():
        row = int(np.flatnonzero(unknown)[0]) + 1
        raise DataError(
            f"{where(source, row, 'condition')}: condition '{names.iloc[row - 1]}' is not in the "
            f"fit (conditions: {listing(fit.conditions, 10)})"
        )
    if "mu_condition" not in fit.posterior:
        return np.zeros(len(frame), dtype=np.int64)
    return names.map({name: i for i, name in enumerate(fit.conditions)}).to_numpy()


def first_choice_draws(
    fit: Fit,
    a_idx: np.ndarray,
    b_idx: np.ndarray,
    condition_idx: np.ndarray,
    draws: int | None = None,
):
    """Yield (row slice, P(first chosen) shaped (rows, draws)) in blocks of rows, with noise,
    position bias, condition shifts and lapse as the fit has them. `draws` thins the posterior."""
    posterior = _thinned(fit, draws)
    for rows, z, pair_var, lapse in _choice_terms(fit, posterior, a_idx, b_idx, condition_idx):
        if pair_var is not None:
            # A new pair's effect is a new draw: Phi(z + e) averaged over e, in closed form.
            z = z / np.sqrt(1 + pair_var)
        yield rows, first_choice_probability(z, fit.spec.link, lapse)


def replicate_choice_draws(
    fit: Fit, cells: pd.DataFrame, draws: int | None, rng: np.random.Generator
):
    """Yield (row slice, the probability that each cell's replicated trials share, shaped
    (rows, draws)) for the cells of `fit.cells`' form. Binomial cells share P(first); a
    beta-binomial cell draws its own from Beta(kappa P, kappa (1 - P)) with that posterior
    draw's kappa; with pair effects each unordered pair draws a new effect from Normal(0, sd),
    shared by its cells (both orders), not its fitted one: so both forms replicate what repeats
    share alike, as beta-binomial cells (which integrate the effect out) can only do."""
    posterior = _thinned(fit, draws)
    a_idx, b_idx = cells["a_idx"].to_numpy(np.int64), cells["b_idx"].to_numpy(np.int64)
    condition = cells["condition_idx"].to_numpy(np.int64)
    task_dataset = fit.tasks["dataset_idx"].to_numpy()
    beta_binomial = fit.spec.overdispersion in BETA_BINOMIAL
    if beta_binomial:
        log_kappa = np.log(post.task_concentration(posterior, task_dataset))
    if fit.spec.overdispersion in PAIR_EFFECTS:
        pair_idx, n_pairs, orientation = pair_index(a_idx, b_idx, condition, len(fit.tasks))
        effects = rng.standard_normal((n_pairs, post.n_samples(posterior)))
    for rows, z, pair_var, lapse in _choice_terms(fit, posterior, a_idx, b_idx, condition):
        if pair_var is not None:
            z = z + orientation[rows, None] * effects[pair_idx[rows]] * np.sqrt(pair_var)
        p = first_choice_probability(z, fit.spec.link, lapse)
        if beta_binomial:
            kappa = cell_log_concentration(log_kappa, a_idx[rows], b_idx[rows])
            p = shared_probability(p, np.exp(kappa), rng)
        yield rows, p


def _thinned(fit: Fit, draws: int | None):
    posterior = fit.posterior
    if draws is not None and draws < post.n_samples(posterior):
        posterior = posterior.thin({"draw": -(-post.n_samples(posterior) // draws)})
    return posterior


def _choice_terms(fit: Fit, posterior, a_idx, b_idx, condition_idx):
    """Yield (row slice, z without pair effects, the pair effect's variance in units of the
    cell's noise variance or None, lapse) in blocks of rows, each (rows, draws) or broadcast."""
    task_dataset = fit.tasks["dataset_idx"].to_numpy()
    sigma = post.task_sigma(posterior, task_dataset)
    position, scope = post.position(posterior)
    lapse = post.draws(posterior, "lapse") if "lapse" in posterior else 0.0
    task_lapse = post.draws(posterior, "lapse_task") if "lapse_task" in posterior else None
    tasks_a, tasks_b = a_idx, b_idx
    pair_sd = post.draws(posterior, "pair_sd") if "pair_sd" in posterior else None
    if "pair_sd_dataset" in posterior:
        pair_sd = post.draws(posterior, "pair_sd_dataset")[task_dataset]  # (task, draws)
    if "pair_sd_task" in posterior:
        pair_sd = post.draws(posterior, "pair_sd_task")
    if "mu_condition" in posterior:
        # Flatten (condition, task) rows as the model does.
        n_conditions, n_tasks = len(fit.conditions), len(task_dataset)
        mu = post.draws(posterior, "mu_condition").reshape(n_conditions * n_tasks, -1)
        sigma, task_dataset = np.tile(sigma, (n_conditions, 1)), np.tile(task_dataset, n_conditions)
        if pair_sd is not None and np.ndim(pair_sd) == 2:
            pair_sd = np.tile(pair_sd, (n_conditions, 1))
        a_idx, b_idx = condition_idx * n_tasks + a_idx, condition_idx * n_tasks + b_idx
    else:
        mu = post.draws(posterior, "mu")
    pair_var = None
    for start in range(0, len(a_idx), _CHUNK):
        rows = slice(start, start + _CHUNK)
        z = first_choice_z(mu, sigma, position, a_idx[rows], b_idx[rows], task_dataset, scope)
        if pair_sd is not None:
            scale = sigma[a_idx[rows]] ** 2 + sigma[b_idx[rows]] ** 2
            pair_var = pair_sd**2
            if np.ndim(pair_var) == 2:
                pair_var = (pair_var[a_idx[rows]] + pair_var[b_idx[rows]]) / 2
            pair_var = pair_var / scale
        if task_lapse is not None:
            lapse = (task_lapse[tasks_a[rows]] + task_lapse[tasks_b[rows]]) / 2
        yield rows, z, pair_var, lapse
