"""Stated ratings: how much a rating protocol discriminates between tasks, and an ordinal model.

Per model and template: the distribution of ratings, the share at the modal value, the KL
divergence of that distribution from uniform over the scale's allowed values (0 = uses the
whole scale evenly; log K = always the same value), and the one-way random-effects ICC(1)
across resamples of each task (between-task variance over total: 1 = resamples always agree and
tasks differ, 0 = no signal about tasks). A protocol that says 4 to almost every task on 1-5 has a
large KL and an ICC near zero or undefined; 1-100 scales that pile on multiples of 20 show up
in the distribution and KL.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from bayespref.analysis.summaries import INTERVAL_TAILS
from bayespref.errors import DataError
from bayespref.io.locations import where
from bayespref.io.tables import read_table, require_columns, text_column

GROUP = ["model", "template", "scale"]
SUMMARY_COLUMNS = GROUP + [
    "n_tasks",
    "n_ratings",
    "n_unparsed",
    "modal_value",
    "modal_share",
    "kl_from_uniform",
    "icc1",
]
# Scales are listed value by value (distribution rows, ordinal cut-points), so their size is
# bounded; 18 digits keep the bounds within int64.
MAX_SCALE_VALUES = 10_001
_SCALE = re.compile(r"^\s*(-?\d{1,18})\s*-\s*(-?\d{1,18})(?:\s+without\s+(-?\d{1,18}))?\s*$")


def allowed_values(scale: str) -> np.ndarray:
    """The values a scale label allows: '1-5' -> 1..5, '1-5 without 3' -> 1, 2, 4, 5. A scale of
    more than MAX_SCALE_VALUES values is refused before any is listed."""
    match = _SCALE.match(str(scale))
    if match is None or int(match[1]) >= int(match[2]):
        raise DataError(f"scale '{scale}' is not of the form 'LOW-HIGH' or 'LOW-HIGH without N'")
    low, high = int(match[1]), int(match[2])
    if high - low + 1 > MAX_SCALE_VALUES:
        raise DataError(
            f"scale '{scale}' has {high - low + 1} values; at most {MAX_SCALE_VALUES} are supported"
        )
    values = np.arange(low, high + 1)
    return values[values != int(match[3])] if match[3] is not None else values


def _shares(ratings: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """Count of each allowed value among `ratings`."""
    return pd.Series(ratings).value_counts().reindex(allowed, fill_value=0).to_numpy()


def read_ratings(path: str | Path) -> pd.DataFrame:
    """Read a ratings table (the collect contract); `model` and `template` default to '-'.
    Ratings off their scale are errors naming the row."""
    source = str(path)
    frame = read_table(path)
    require_columns(frame, ("task_id", "rating", "scale"), source)
    return validate_ratings(frame, source)


def validate_ratings(frame: pd.DataFrame, source: str = "<ratings>") -> pd.DataFrame:
    """Ratings as numbers (empty = unparsed, NaN); text that is not a number, and numbers off
    their row's scale, are errors naming the 1-based row."""
    frame = frame.reset_index(drop=True)
    for column in ("model", "template"):
        frame[column] = frame[column].astype(str) if column in frame.columns else "-"
    task_id = text_column(frame, "task_id", source, identifier=True)
    frame = frame.assign(task_id=task_id, scale=frame["scale"].astype(str))
    text = frame["rating"].astype(str).str.strip()
    rating = pd.to_numeric(frame["rating"].where(text != "", np.nan), errors="coerce")
    on_scale = np.ones(len(frame), dtype=bool)
    for scale, rows in frame.groupby("scale", sort=False).indices.items():
        try:
            allowed = allowed_values(scale)
        except DataError as error:
            raise DataError(f"{where(source, int(rows[0]) + 1, 'scale')}: {error}") from error
        values = rating.to_numpy()[rows]
        on_scale[rows] = np.isnan(values) | np.isin(values, allowed)
    for bad, problem in (
        (rating.isna() & frame["rating"].notna() & (text != ""), "is not a number"),
        (~on_scale, "is not an allowed value of its scale"),
    ):
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where(source, row + 1, 'rating')}: '{frame['rating'].iloc[row]}' {problem} "
                f"('{frame['scale'].iloc[row]}')"
            )
    return frame.assign(rating=rating)


def kl_from_uniform(ratings: np.ndarray, allowed: np.ndarray) -> float:
    """KL(p || uniform) in nats, p the share of `ratings` at each allowed value; NaN if empty."""
    ratings = np.asarray(ratings, float)
    if ratings.size == 0:
        return float("nan")
    share = _shares(ratings, allowed) / ratings.size
    used = share > 0
    return float(np.sum(share[used] * np.log(share[used] * len(allowed))))


def icc1(task_ids: np.ndarray, ratings: np.ndarray) -> float:
    """One-way random-effects ICC(1) of ratings grouped by task (unequal group sizes allowed):
    (MSB - MSW) / (MSB + (n0 - 1) MSW). NaN when undefined: fewer than two tasks, no task rated
    twice, or no variance at all (e.g. every rating the same)."""
    frame = pd.DataFrame({"task": task_ids, "rating": np.asarray(ratings, float)}).dropna()
    groups = frame.groupby("task")["rating"]
    sizes, means = groups.size().to_numpy(), groups.mean().to_numpy()
    n, k = len(frame), len(sizes)
    if k < 2 or n - k < 1:
        return float("nan")
    grand = frame["rating"].mean()
    msb = np.sum(sizes * (means - grand) ** 2) / (k - 1)
    msw = np.sum((frame["rating"] - groups.transform("mean")) ** 2) / (n - k)
    n0 = (n - np.sum(sizes**2) / n) / (k - 1)
    denominator = msb + (n0 - 1) * msw
    return float((msb - msw) / denominator) if denominator > 0 else float("nan")


def distribution(ratings: pd.DataFrame) -> pd.DataFrame:
    """Count and share of each allowed value (zeros included) per model, template and scale."""
    frames = []
    for (model, template, scale), group in ratings.groupby(GROUP, sort=True):
        values = group["rating"].dropna()
        allowed = allowed_values(scale)
        counts = _shares(values.to_numpy(), allowed)
        frames.append(
            pd.DataFrame(
                {
                    "model": model,
                    "template": template,
                    "scale": scale,
                    "value": allowed,
                    "count": counts,
                    "share": counts / max(len(values), 1),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def summarize(ratings: pd.DataFrame) -> pd.DataFrame:
    """One row per model, template and scale: counts, modal value and share, KL, ICC(1)."""
    rows = []
    for (model, template, scale), group in ratings.groupby(GROUP, sort=True):
        values = group["rating"].dropna()
        counts = values.value_counts()
        rows.append(
            [
                model,
                template,
                scale,
                group["task_id"].nunique(),
                len(values),
                int(group["rating"].isna().sum()),
                counts.idxmax() if len(counts) else np.nan,
                counts.max() / len(values) if len(counts) else np.nan,
                kl_from_uniform(values.to_numpy(), allowed_values(scale)),
                icc1(group["task_id"].to_numpy(), group["rating"].to_numpy()),
            ]
        )
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)


def ordered_cutpoints(name: str, n_cut: int, sd: float):
    """Ordered cut-points of an ordinal likelihood, Normal(0, sd) each (inside a PyMC model)."""
    import pymc as pm

    return pm.Normal(
        name,
        0.0,
        sd,
        shape=n_cut,
        transform=pm.distributions.transforms.ordered,
        initval=np.linspace(-2, 2, n_cut),
    )


def sample_quietly(draws: int, tune: int, chains: int, seed: int):
    """NumPyro NUTS on the PyMC model in context, without a progress bar or PyMC's checks
    (the callers summarise intervals; the main fits go through inference/nuts.py)."""
    import pymc as pm

    from bayespref.inference import device

    return pm.sample(
        draws=draws,
        tune=tune,
        chains=chains,
        nuts_sampler="numpyro",
        random_seed=seed,
        progressbar=False,
        compute_convergence_checks=False,
        nuts={"chain_method": device.chain_method(chains)},
    )


def fit_ordinal(
    ratings: pd.DataFrame, draws: int = 500, tune: int = 500, chains: int = 2, seed: int = 0
) -> pd.DataFrame:
    """Ordered-logistic model: rating ~ OrderedLogistic(theta_task, cut-points per template),
    theta ~ Normal(0, 1). Sampled with NumPyro NUTS. One model's ratings at a time (filter
    first). Returns per task `latent_mean, latent_sd, latent_low, latent_high` (94%)."""
    import pymc as pm

    if ratings["model"].nunique() > 1:
        raise DataError("fit_ordinal takes one model's ratings; filter on the 'model' column")
    rated = ratings.dropna(subset=["rating"])
    task_ids, task_idx = np.unique(rated["task_id"].to_numpy(), return_inverse=True)
    rated = rated.assign(task_idx=task_idx)
    with pm.Model(coords={"task": task_ids}):
        theta = pm.Normal("theta", 0.0, 1.0, dims="task")
        for index, (key, group) in enumerate(rated.groupby(["template", "scale"])):
            allowed = allowed_values(key[1])
            category = np.searchsorted(allowed, group["rating"].to_numpy())
            cutpoints = ordered_cutpoints(f"cutpoints_{index}", len(allowed) - 1, sd=3.0)
            pm.OrderedLogistic(
                f"rating_{index}",
                eta=theta[group["task_idx"].to_numpy()],
                cutpoints=cutpoints,
                observed=category,
            )
        idata = sample_quietly(draws, tune, chains, seed)
    samples = idata["posterior"]["theta"].values.reshape(-1, len(task_ids)).T
    low, high = np.quantile(samples, INTERVAL_TAILS, axis=1)
    return pd.DataFrame(
        {
            "task_id": task_ids,
            "latent_mean": samples.mean(axis=1),
            "latent_sd": samples.std(axis=1, ddof=1),
            "latent_low": low,
            "latent_high": high,
        }
    )


def read_utilities(path: str | Path) -> pd.DataFrame:
    """A fit's utilities.csv (at least `task_id` and a numeric `mu_mean`)."""
    source = str(path)
    table = read_table(path)
    require_columns(table, ("task_id", "mu_mean"), source)
    mu = pd.to_numeric(table["mu_mean"], errors="coerce")
    if mu.isna().any():
        row = int(np.flatnonzero(mu.isna().to_numpy())[0]) + 1
        raise DataError(f"{where(source, row, 'mu_mean')}: not a number")
    return table.assign(mu_mean=mu)


def correlate_with_utilities(
    latent: pd.DataFrame, utilities: str | Path | pd.DataFrame
) -> dict[str, float]:
    """Spearman and Pearson correlation of latent rating values with a fit's utilities
    (utilities.csv; with conditions, the rows of the first condition listed) over shared tasks."""
    table = utilities if isinstance(utilities, pd.DataFrame) else read_utilities(utilities)
    if "condition" in table.columns:
        table = table[table["condition"] == table["condition"].iloc[0]]
    joined = latent.merge(table[["task_id", "mu_mean"]], on="task_id")
    if len(joined) < 3:
        raise DataError(f"only {len(joined)} tasks are both rated and in the fit; need 3")
    return {
        "n_tasks": len(joined),
        "spearman": float(spearmanr(joined["latent_mean"], joined["mu_mean"]).statistic),
        "pearson": float(pearsonr(joined["latent_mean"], joined["mu_mean"]).statistic),
    }
