"""P(first shown is chosen) for new pairs, from posterior draws (noise and position included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from bayespref import posterior as post
from bayespref.choice import cdf, first_choice_z
from bayespref.data import DataError, listing, read_table, require_columns, text_column, where
from bayespref.fit import Fit, load_fit
from bayespref.summaries import INTERVAL_TAILS

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
    return index_of.reindex(ids["task_a"]).to_numpy(), index_of.reindex(ids["task_b"]).to_numpy()


def predict(fit: Fit | str | Path, pairs: pd.DataFrame | str | Path) -> pd.DataFrame:
    """The input rows plus `p_first_mean`, `p_first_low`, `p_first_high` (94% interval)."""
    fit = fit if isinstance(fit, Fit) else load_fit(fit)
    source = "<pairs>" if isinstance(pairs, pd.DataFrame) else str(pairs)
    frame = pairs.copy() if isinstance(pairs, pd.DataFrame) else read_table(pairs)
    require_columns(frame, ("task_a", "task_b"), source)
    a_idx, b_idx = _task_indices(frame, fit, source)

    posterior = fit.posterior
    task_dataset = fit.tasks["dataset_idx"].to_numpy()
    mu = post.draws(posterior, "mu")
    sigma = post.task_sigma(posterior, task_dataset)
    position, by_dataset = post.position(posterior)
    mean, low, high = (np.empty(len(frame)) for _ in range(3))
    for start in range(0, len(frame), _CHUNK):
        rows = slice(start, start + _CHUNK)
        z = first_choice_z(mu, sigma, position, a_idx[rows], b_idx[rows], task_dataset, by_dataset)
        probability = cdf(z, fit.spec.link)
        mean[rows] = probability.mean(axis=1)
        low[rows], high[rows] = np.quantile(probability, INTERVAL_TAILS, axis=1)
    return frame.assign(p_first_mean=mean, p_first_low=low, p_first_high=high)
