"""Posterior predictive checks: replicated win rates, shares of unanimous cells and refusal rates
against the observed ones.

Replicates are drawn given each cell's trial counts: choices ~ Binomial(n, the probability the
cell's trials share: P(first), or for beta-binomial cells and pair effects a new draw of what
the cell's repeats share, analysis/prediction.py: replicate_choice_draws) and, when
refusals are modelled, refusals ~ Binomial(n + r, refusal probability), and given refusal counts
of completions, each task's refused completions ~ Binomial(n, completion refusal probability).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.special import expit

from bayespref.analysis.prediction import replicate_choice_draws
from bayespref.analysis.summaries import INTERVAL_TAILS
from bayespref.model.structure import completion_refusal_logit
from bayespref.posterior import draws as post
from bayespref.posterior.fit import Fit

PPC_COLUMNS = ["statistic", "observed", "replicated_mean", "replicated_low", "replicated_high"]
_DRAWS = 400


def _by_dataset(values: np.ndarray, dataset: np.ndarray, n_datasets: int) -> np.ndarray:
    """Sums of `values` (cells, ...) over each dataset's (or any group's) cells, as one sparse
    matrix product (np.add.at is orders of magnitude slower at hundreds of thousands of cells; a
    dense indicator grows with the groups, datasets squared for ordered pairs)."""
    cells = np.arange(len(dataset))
    indicator = sparse.csr_matrix(
        (np.ones(len(dataset)), (dataset, cells)), shape=(n_datasets, len(dataset))
    )
    return np.asarray(indicator @ np.asarray(values, dtype=float))


def _involving(values: np.ndarray, a_dataset: np.ndarray, b_dataset: np.ndarray, n_datasets: int):
    """Sums of `values` (cells, ...) over the cells each dataset's tasks were in, a cell within
    one dataset counted once."""
    across = (a_dataset != b_dataset).reshape((-1,) + (1,) * (np.ndim(values) - 1))
    return _by_dataset(values, a_dataset, n_datasets) + _by_dataset(
        values * across, b_dataset, n_datasets
    )


def _replicated_first_wins(fit: Fit, cells: pd.DataFrame, rng: np.random.Generator):
    """Yield (row slice, replicated first-position wins shaped (rows, draws)), block by block of
    cells so that memory stays at one block x draws."""
    n = cells["n"].to_numpy(np.int64)
    for rows, p in replicate_choice_draws(fit, cells, _DRAWS, rng):
        yield rows, rng.binomial(n[rows, None], p)


def _refusal_statistics(fit: Fit, cells: pd.DataFrame, rng: np.random.Generator) -> dict:
    """Per dataset, the refusal rate of choice trials and, when the fit saw them, of
    completions, each observed with its replicates."""
    n, r = cells["n"].to_numpy(np.int64), cells["r"].to_numpy(np.int64)
    a_idx, b_idx = cells["a_idx"].to_numpy(), cells["b_idx"].to_numpy()
    task_dataset = fit.tasks["dataset_idx"].to_numpy()
    a_dataset, b_dataset = task_dataset[a_idx], task_dataset[b_idx]
    posterior = fit.posterior.thin({"draw": -(-post.n_samples(fit.posterior) // _DRAWS)})
    propensity = post.draws(posterior, "refusal_propensity")
    statistics = {}
    offered = n + r
    r_rep = rng.binomial(offered[:, None], expit((propensity[a_idx] + propensity[b_idx]) / 2))
    for index, dataset in enumerate(fit.datasets):
        involved = (a_dataset == index) | (b_dataset == index)
        total = max(offered[involved].sum(), 1)
        statistics[f"refusal_rate[{dataset}]"] = (
            r[involved].sum() / total,
            r_rep[involved].sum(0) / total,
        )
    completions = fit.completion_refusals
    if completions is None:
        return statistics
    task = completions["task_idx"].to_numpy()
    logit = completion_refusal_logit(
        post.draws(posterior, "completion_refusal_intercept"),
        post.draws(posterior, "completion_refusal_slope"),
        propensity[task],
    )
    done, refused = completions["n"].to_numpy(), completions["refusals"].to_numpy()
    replicated = rng.binomial(done[:, None], expit(logit))
    for index, dataset in enumerate(fit.datasets):
        mine = task_dataset[task] == index
        total = max(done[mine].sum(), 1)
        statistics[f"completion_refusal_rate[{dataset}]"] = (
            refused[mine].sum() / total,
            replicated[mine].sum(0) / total,
        )
    return statistics


def posterior_predictive_checks(fit: Fit, cells: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Observed statistics with the mean and 94% interval of their replicates."""
    rng = np.random.default_rng(seed)
    n, k = cells["n"].to_numpy(np.int64), cells["k"].to_numpy(np.int64)
    a_idx, b_idx = cells["a_idx"].to_numpy(), cells["b_idx"].to_numpy()
    task_dataset = fit.tasks["dataset_idx"].to_numpy()
    a_dataset, b_dataset = task_dataset[a_idx], task_dataset[b_idx]
    n_datasets = len(fit.datasets)

    # A dataset's win rate: the share of the choice trials its tasks took part in that they won.
    shown = np.maximum(
        _by_dataset(n, a_dataset, n_datasets) + _by_dataset(n, b_dataset, n_datasets), 1
    )
    observed = (
        _by_dataset(k, a_dataset, n_datasets) + _by_dataset(n - k, b_dataset, n_datasets)
    ) / shown
    # A dataset's unanimous share: of the cells of two or more trials its tasks were in, the
    # share whose trials all chose the same task. Binomial cells at P predict few such cells
    # where repeats agree beyond P: the check of whether binomial cells are adequate.
    repeated = n >= 2
    with_repeats = _involving(repeated, a_dataset, b_dataset, n_datasets)
    unanimous = _involving(repeated & ((k == 0) | (k == n)), a_dataset, b_dataset, n_datasets)
    first_wins, wins, unanimous_rep = 0, 0, 0
    for rows, k_rep in _replicated_first_wins(fit, cells, rng):
        first_wins = first_wins + k_rep.sum(0)
        wins = wins + _by_dataset(k_rep, a_dataset[rows], n_datasets)
        wins = wins + _by_dataset(n[rows, None] - k_rep, b_dataset[rows], n_datasets)
        all_same = repeated[rows, None] & ((k_rep == 0) | (k_rep == n[rows, None]))
        unanimous_rep = unanimous_rep + _involving(
            all_same, a_dataset[rows], b_dataset[rows], n_datasets
        )
    replicated = wins / shown[:, None]
    statistics = {
        "first_position_win_rate": (k.sum() / max(n.sum(), 1), first_wins / max(n.sum(), 1))
    }
    for index, dataset in enumerate(fit.datasets):
        statistics[f"win_rate[{dataset}]"] = (observed[index], replicated[index])
    for index, dataset in enumerate(fit.datasets):
        if with_repeats[index] > 0:
            statistics[f"unanimous_cells[{dataset}]"] = (
                unanimous[index] / with_repeats[index],
                unanimous_rep[index] / with_repeats[index],
            )
    if "refusal_propensity" in fit.posterior:
        statistics |= _refusal_statistics(fit, cells, rng)
    rows = []
    for name, (value, replicates) in statistics.items():
        low, high = np.quantile(replicates, INTERVAL_TAILS)
        rows.append([name, float(value), float(np.mean(replicates)), low, high])
    table = pd.DataFrame(rows, columns=PPC_COLUMNS)
    table["outside"] = (table["observed"] < table["replicated_low"]) | (
        table["observed"] > table["replicated_high"]
    )
    return table


POSITION_PPC_COLUMNS = ["first_dataset", "second_dataset", "trials", "observed"]
POSITION_PPC_COLUMNS += PPC_COLUMNS[2:] + ["outside"]


def position_rate_checks(fit: Fit, cells: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """First-shown win rate per dataset of the first-shown task (`second_dataset` is `all`)
    and per ordered dataset pair (first's dataset, second's), observed against the mean and 94%
    interval of its replicates; groups without choice trials are left out."""
    n, k = (cells[column].to_numpy(np.int64) for column in ("n", "k"))
    task_dataset = fit.tasks["dataset_idx"].to_numpy()
    size = len(fit.datasets)
    first = task_dataset[cells["a_idx"].to_numpy()]
    second = task_dataset[cells["b_idx"].to_numpy()]
    names = np.asarray(fit.datasets, dtype=object)
    # Each grouping: its group per cell, its number of groups, and the groups' labels.
    groupings = [
        (first, size, names, np.full(size, "all", dtype=object)),
        (first * size + second, size**2, np.repeat(names, size), np.tile(names, size)),
    ]
    replicated = [0] * len(groupings)
    for rows, k_rep in _replicated_first_wins(fit, cells, np.random.default_rng(seed)):
        for index, (group, n_groups, *_) in enumerate(groupings):
            replicated[index] = replicated[index] + _by_dataset(k_rep, group[rows], n_groups)
    frames = []
    for (group, n_groups, first_names, second_names), wins in zip(
        groupings, replicated, strict=True
    ):
        trials = _by_dataset(n, group, n_groups)
        rates = wins / np.maximum(trials, 1)[:, None]
        low, high = np.quantile(rates, INTERVAL_TAILS, axis=1)
        frame = pd.DataFrame(
            {
                "first_dataset": first_names,
                "second_dataset": second_names,
                "trials": trials.astype(np.int64),
                "observed": _by_dataset(k, group, n_groups) / np.maximum(trials, 1),
                "replicated_mean": rates.mean(axis=1),
                "replicated_low": low,
                "replicated_high": high,
            }
        )
        frames.append(frame[trials > 0])
    table = pd.concat(frames, ignore_index=True)
    table["outside"] = (table["observed"] < table["replicated_low"]) | (
        table["observed"] > table["replicated_high"]
    )
    return table[POSITION_PPC_COLUMNS]
