"""Self vs cross judging: does a rater favour completions it wrote itself?

Pairwise judgments of transcripts (`bayespref judge` with a choice template), one rater's view of
transcript x (task t, author a):

    u = mu_t + alpha_a + s * [rater == a]
    P(first chosen) = Phi((u_first - u_second + beta_rater) / sqrt(2))

mu (task utilities) and alpha (author effects) sum to zero; beta is each rater's position bias
(post-task position bias), s the self term. Dividing by sqrt(2) puts every term in units of one
transcript's noise, as in the main model with shared noise (sigma = 1). A rater's overall
leniency cancels within a pair, so raters enter through beta and s only; the completion-time
condition cancels too, because pairs never mix conditions.

Stated ratings of completions (`bayespref judge` with a rating template), ordered logistic with
cut-points per rater and scale (which absorb each rater's use of the scale):

    eta = mu_t + alpha_a + gamma_c + s * [rater == a],  gamma_default = 0

The research's apparent self-preference came from authors completing different task sets; these
models are meant for the balanced grid `bayespref judge` insists on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from bayespref.analysis.ratings import allowed_values, ordered_cutpoints, sample_quietly
from bayespref.analysis.summaries import INTERVAL_TAILS
from bayespref.data.comparisons import DEFAULT_CONDITION
from bayespref.errors import DataError
from bayespref.io.tables import require_columns

PAIRWISE_COLUMNS = ("task_a", "task_b", "choice", "author_model_a", "author_model_b")
RATING_COLUMNS = ("task_id", "rating", "scale", "author_model")
TERMS_COLUMNS = ["term", "level", "mean", "sd", "low", "high", "r_hat"]


def _codes(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    levels, codes = np.unique(values.astype(str).to_numpy(), return_inverse=True)
    return levels, codes


def _rater_column(frame: pd.DataFrame, source: str) -> pd.Series:
    column = "rater_model" if "rater_model" in frame.columns else "model"
    require_columns(frame, (column,), source)
    return frame[column].astype(str)


def _terms(idata, names: dict[str, tuple[str, np.ndarray | None]]) -> pd.DataFrame:
    """Posterior summary of each named variable: (term, level) rows with the 94% interval."""
    import arviz as az

    rows = []
    for variable, (term, levels) in names.items():
        draws = idata["posterior"][variable]
        r_hat = np.atleast_1d(az.rhat(draws.to_dataset(name="x"))["x"].to_numpy())
        values = draws.to_numpy().reshape(draws.shape[0] * draws.shape[1], -1)
        low, high = np.quantile(values, INTERVAL_TAILS, axis=0)
        for i in range(values.shape[1]):
            level = "" if levels is None else str(levels[i])
            rows.append(
                [
                    term,
                    level,
                    values[:, i].mean(),
                    values[:, i].std(ddof=1),
                    low[i],
                    high[i],
                    r_hat[i],
                ]
            )
    return pd.DataFrame(rows, columns=TERMS_COLUMNS)


def fit_self_cross_pairwise(
    comparisons: pd.DataFrame,
    source: str = "<comparisons>",
    draws: int = 500,
    chains: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """Posterior of the self term, author effects, rater position biases and task utilities
    from judged pairs (`choice` a or b; refusals and unparsed answers are left out). Returns
    TERMS_COLUMNS rows with terms `self`, `author`, `position`, `task`."""
    import pymc as pm

    require_columns(comparisons, PAIRWISE_COLUMNS, source)
    raters_all = _rater_column(comparisons, source)
    decided = comparisons["choice"].astype(str).str.strip().str.lower().isin(["a", "b"])
    frame = comparisons[decided.to_numpy()].assign(rater=raters_all[decided.to_numpy()])
    if frame.empty:
        raise DataError(f"{source}: no judgments chose a or b")
    tasks, task_codes = _codes(pd.concat([frame["task_a"], frame["task_b"]]))
    authors, author_codes = _codes(pd.concat([frame["author_model_a"], frame["author_model_b"]]))
    raters, rater = _codes(frame["rater"])
    n = len(frame)
    task_a, task_b = task_codes[:n], task_codes[n:]
    author_a, author_b = author_codes[:n], author_codes[n:]
    self_a = (frame["author_model_a"].astype(str) == frame["rater"]).to_numpy(float)
    self_b = (frame["author_model_b"].astype(str) == frame["rater"]).to_numpy(float)
    if not (self_a - self_b).any():
        raise DataError(
            f"{source}: no pair shows a rater its own completion against another author's, so "
            "the self term is not identified (judge with raters who are also authors)"
        )
    first = (frame["choice"].astype(str).str.strip().str.lower() == "a").to_numpy(int)
    with pm.Model() as model:
        mu = pm.ZeroSumNormal("mu", sigma=2.0, shape=len(tasks))
        alpha = (
            pm.ZeroSumNormal("alpha", sigma=1.0, shape=len(authors))
            if len(authors) > 1
            else pm.math.zeros(1)
        )
        beta = pm.Normal("beta", 0.0, 1.0, shape=len(raters))
        s = pm.Normal("s", 0.0, 1.0)
        z = (
            mu[task_a]
            - mu[task_b]
            + alpha[author_a]
            - alpha[author_b]
            + s * (self_a - self_b)
            + beta[rater]
        ) / np.sqrt(2.0)
        pm.Bernoulli("first", p=pm.math.invprobit(z), observed=first)
    with model:
        idata = sample_quietly(draws, draws, chains, seed)
    names = {"s": ("self", None), "beta": ("position", raters), "mu": ("task", tasks)}
    if len(authors) > 1:
        names["alpha"] = ("author", authors)
    return _terms(idata, names)


def fit_self_cross_ratings(
    ratings: pd.DataFrame,
    source: str = "<ratings>",
    draws: int = 500,
    chains: int = 2,
    seed: int = 0,
) -> pd.DataFrame:
    """Posterior of the self term, author effects, condition effects (against 'default', or
    the first condition) and task effects from ratings of completions (unparsed ones left out).
    Returns TERMS_COLUMNS rows with terms `self`, `author`, `condition`, `task`."""
    import pymc as pm

    require_columns(ratings, RATING_COLUMNS, source)
    frame = ratings.assign(rater=_rater_column(ratings, source)).dropna(subset=["rating"])
    frame = frame.reset_index(drop=True)
    if frame.empty:
        raise DataError(f"{source}: no parsed ratings")
    if "condition" not in frame.columns:
        frame = frame.assign(condition=DEFAULT_CONDITION)
    tasks, task = _codes(frame["task_id"])
    authors, author = _codes(frame["author_model"])
    conditions = sorted(set(frame["condition"].astype(str)), key=lambda c: c != DEFAULT_CONDITION)
    condition = frame["condition"].astype(str).map({c: i for i, c in enumerate(conditions)})
    self_rated = (frame["author_model"].astype(str) == frame["rater"]).to_numpy(float)
    with pm.Model() as model:
        mu = pm.ZeroSumNormal("mu", sigma=2.0, shape=len(tasks))
        alpha = pm.ZeroSumNormal("alpha", sigma=1.0, shape=len(authors)) if len(authors) > 1 else 0
        gamma = (
            pm.Normal("gamma", 0.0, 2.0, shape=len(conditions) - 1) if len(conditions) > 1 else None
        )
        s = pm.Normal("s", 0.0, 1.0)
        eta = mu[task] + s * self_rated
        if len(authors) > 1:
            eta = eta + alpha[author]
        if gamma is not None:
            eta = eta + pm.math.concatenate([np.zeros(1), gamma])[condition.to_numpy()]
        for index, ((_, scale), rows) in enumerate(frame.groupby(["rater", "scale"])):
            allowed = allowed_values(str(scale))
            cutpoints = ordered_cutpoints(f"cutpoints_{index}", len(allowed) - 1, sd=4.0)
            positions = frame.index.get_indexer(rows.index)
            pm.OrderedLogistic(
                f"rating_{index}",
                eta=eta[positions],
                cutpoints=cutpoints,
                observed=np.searchsorted(allowed, rows["rating"].to_numpy()),
            )
    with model:
        idata = sample_quietly(draws, draws, chains, seed)
    names = {"s": ("self", None), "mu": ("task", tasks)}
    if len(authors) > 1:
        names["alpha"] = ("author", authors)
    if len(conditions) > 1:
        names["gamma"] = ("condition", np.asarray(conditions[1:]))
    return _terms(idata, names)
