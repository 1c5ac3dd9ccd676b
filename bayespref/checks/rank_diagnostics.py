"""Rank-normalised split r_hat and bulk ESS (Vehtari et al. 2021), vectorised over quantities.

They give arviz's `rhat(method="rank")` and `ess(method="bulk")` to rounding, but arviz computes
them one quantity at a time, in Python: 3.6 s of a 500-task fit, against 1.1 s here. Arrays are
shaped (chain, draw, quantity)."""

from __future__ import annotations

import numpy as np
from scipy import fft, special

MIN_DRAWS = 4


def _split_chains(values: np.ndarray) -> np.ndarray:
    """Each chain's first and last halves as chains of their own (a middle draw is dropped)."""
    half = values.shape[1] // 2
    return np.concatenate([values[:, :half], values[:, values.shape[1] - half :]], axis=0)


def average_ranks(rows: np.ndarray) -> np.ndarray:
    """Ranks 1..n along each row, ties given their mean rank, a row with a NaN all NaN: scipy's
    `rankdata(rows, axis=1)`, from one argsort (3x faster on 780 quantities x 3,200 draws: NumPy
    sorts with SIMD; ties come from NUTS repeating a draw, and from constants)."""
    n = rows.shape[1]
    order = np.argsort(rows, axis=1)
    ordered = np.take_along_axis(rows, order, axis=1)
    positions = np.broadcast_to(np.arange(n), rows.shape)
    starts = np.ones(rows.shape, dtype=bool)
    np.not_equal(ordered[:, 1:], ordered[:, :-1], out=starts[:, 1:])
    if starts.all():
        ranks_sorted = positions + 1.0
    else:  # a tie's rank: the mean of its first and last positions
        ends = np.ones(rows.shape, dtype=bool)
        ends[:, :-1] = starts[:, 1:]
        first = np.maximum.accumulate(np.where(starts, positions, 0), axis=1)
        last = np.minimum.accumulate(np.where(ends, positions, n)[:, ::-1], axis=1)[:, ::-1]
        ranks_sorted = (first + last) / 2 + 1.0
    ranks = np.empty(rows.shape)
    np.put_along_axis(ranks, order, ranks_sorted, axis=1)
    ranks[np.isnan(rows).any(axis=1)] = np.nan
    return ranks


def _z_scale(values: np.ndarray) -> np.ndarray:
    """Normal scores of each quantity's ranks over all chains and draws (Blom's offsets)."""
    by_quantity = np.ascontiguousarray(values.reshape(-1, values.shape[-1]).T)  # sorts faster
    ranks = average_ranks(by_quantity)
    return special.ndtri((ranks.T - 0.375) / (by_quantity.shape[1] + 0.25)).reshape(values.shape)


def _classic_rhat(values: np.ndarray) -> np.ndarray:
    n_draws = values.shape[1]
    between = n_draws * np.var(values.mean(axis=1), axis=0, ddof=1)
    within = np.mean(np.var(values, axis=1, ddof=1), axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt((between / within + n_draws - 1) / n_draws)


def rhat_and_bulk_ess(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per quantity: r_hat, the larger of the bulk and tail (folded at the median) split r_hats,
    NaN for constants and for fewer than 2 chains; and the ESS of the rank-normalised split
    chains. Both NaN for fewer than 4 draws."""
    chains, n_draws, n_quantities = values.shape
    missing = np.full(n_quantities, np.nan)
    if n_draws < MIN_DRAWS:
        return missing, missing
    split = _split_chains(values)
    z_bulk = _z_scale(split)
    ess = _geyer_ess(z_bulk)
    if chains < 2:
        return missing, ess
    folded = np.abs(split - np.median(split.reshape(-1, n_quantities), axis=0))
    bulk, tail = _classic_rhat(z_bulk), _classic_rhat(_z_scale(folded))
    return np.where(np.isnan(tail), bulk, np.maximum(bulk, tail)), ess


def _autocovariance(values: np.ndarray) -> np.ndarray:
    """Autocovariance at every lag along the draw axis, by FFT."""
    n_draws = values.shape[1]
    size = fft.next_fast_len(2 * n_draws)
    spectrum = fft.rfft(values - values.mean(axis=1, keepdims=True), n=size, axis=1)
    return fft.irfft(spectrum * np.conjugate(spectrum), n=size, axis=1)[:, :n_draws] / n_draws


def _geyer_ess(values: np.ndarray) -> np.ndarray:
    """ESS with autocorrelations summed in pairs up to the first non-positive pair, the pairs
    made monotone (Geyer's initial monotone sequence), exactly as arviz truncates them."""
    chains, n_draws, _ = values.shape
    total = chains * n_draws
    mean_autocovariance = _autocovariance(values).mean(axis=0)
    mean_var = mean_autocovariance[0] * n_draws / (n_draws - 1)
    var_plus = mean_var * (n_draws - 1) / n_draws
    if chains > 1:
        var_plus = var_plus + np.var(values.mean(axis=1), axis=0, ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = 1 - (mean_var - mean_autocovariance) / var_plus
    rho[0] = 1.0
    last_pair = max(0, (n_draws - 3) // 2)
    pairs = rho[0 : 2 * last_pair + 2 : 2] + rho[1 : 2 * last_pair + 2 : 2]
    non_positive = pairs <= 0
    stop = np.where(non_positive.any(axis=0), np.argmax(non_positive, axis=0), last_pair)
    stop = np.minimum(stop, last_pair)
    monotone_sums = np.concatenate(
        [np.zeros((1, pairs.shape[1])), np.cumsum(np.minimum.accumulate(pairs, axis=0), axis=0)]
    )
    columns = np.arange(pairs.shape[1])
    even = rho[2 * stop, columns]
    tail = np.where((pairs[stop, columns] >= 0) | (even > 0), even, 0.0)
    tau = np.maximum(-1 + 2 * monotone_sums[stop, columns] + tail, 1 / np.log10(total))
    ess = total / tau
    spread = values.max(axis=(0, 1)) - values.min(axis=(0, 1))
    ess = np.where(np.isnan(var_plus) | (var_plus == 0), np.nan, ess)
    return np.where(spread < np.finfo(float).resolution, total, ess)
