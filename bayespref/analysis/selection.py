"""Which new pairs to compare next, from a fit's posterior draws.

Strategies:
- `posterior` (the default): the BALD score, the mutual information between one trial's outcome
  and the parameters, I = H(mean_s p_s) - mean_s H(p_s), with p_s = P(first chosen) under
  posterior draw s (noise, position bias and lapse included, as `predict` computes it) and H the
  binary entropy in nats; averaged over the two orders of the pair. It is high where the draws
  disagree about the outcome, and low both for pairs whose outcome is certain and for pairs that
  are a coin flip under every draw (noise the data cannot reduce).
- `random`: pairs drawn uniformly.
- `reference`: the reference method's heuristic. A pair qualifies when it is in the lowest 30% of
  |mu_a - mu_b| (posterior means here, so that only the selection rule differs) and in the lowest
  30% of summed degree (choice trials of the two tasks in the fit); the share is widened by 1.5
  (0.45, 0.675, then all) until enough qualify, and pairs are drawn at random among those that do.
  It ignores uncertainty.

Every strategy chooses greedily, best first (in random order for the baselines), among pairs
never compared in the fit nor listed in `exclude`, spreading first under a per-task cap: a pass
takes pairs whose tasks are in no chosen pair yet, the next pass allows a task in two, and so on
up to the cap, `max(2, ceil(4 K / n_tasks))` of the K pairs unless `max_per_task` says otherwise.
A pair's score ignores the batch's other pairs, and several pairs on one uncertain task tell much
the same thing. Each chosen pair is returned in both orders, in the reference condition.

Candidates: when the tasks have at most `candidates` (default 200,000) unordered pairs, all pairs
are scored. Otherwise `posterior` scores, per task, its h nearest neighbours on each side in
posterior-mean utility plus h random partners, h = max(1, candidates // (2 n_tasks)), which keeps
the close pairs where information lives; `random` and `reference` draw `candidates` pairs
uniformly (so the reference quantiles are those of all pairs). Draws are seeded by `seed`.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import entr

from bayespref.analysis.prediction import first_choice_draws
from bayespref.errors import SelectError
from bayespref.posterior import draws as post
from bayespref.posterior.fit import Fit, load_fit

STRATEGIES = ("posterior", "random", "reference")
CANDIDATES = 200_000
SCORE_DRAWS = 400  # posterior draws behind each information score
REFERENCE_SHARE = 0.3
REFERENCE_WIDEN = 1.5


def default_cap(budget: int, n_tasks: int) -> int:
    """Most chosen pairs one task may be in: max(2, ceil(4 K / n_tasks))."""
    return max(2, math.ceil(4 * budget / n_tasks))


def information(
    fit: Fit, a_idx: np.ndarray, b_idx: np.ndarray, draws: int | None = SCORE_DRAWS
) -> np.ndarray:
    """Mutual information (nats) between one trial's outcome and the parameters, averaged over
    the two orders of each pair, in the reference condition."""
    condition = np.zeros(len(a_idx), dtype=np.int64)
    score = np.zeros(len(a_idx))
    for first, second in ((a_idx, b_idx), (b_idx, a_idx)):
        for rows, p in first_choice_draws(fit, first, second, condition, draws):
            expected = _entropy(p.mean(axis=1)) - _entropy(p).mean(axis=1)
            score[rows] += expected / 2
    return score


def _entropy(p: np.ndarray) -> np.ndarray:
    return entr(p) + entr(1 - p)


def _codes(first: np.ndarray, second: np.ndarray, n: int) -> np.ndarray:
    """One integer per unordered pair."""
    low, high = np.minimum(first, second), np.maximum(first, second)
    return low.astype(np.int64) * n + high


def _split(codes: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    return codes // n, codes % n


def _uniform_pairs(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """About `count` distinct unordered pairs drawn uniformly, as codes."""
    first = rng.integers(0, n, 2 * count)
    second = rng.integers(0, n, 2 * count)
    keep = first != second
    codes = pd.unique(_codes(first[keep], second[keep], n))
    return np.sort(codes[:count])


def _near_and_random(mu: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Per task: h nearest neighbours on each side in utility, and h random partners."""
    n = len(mu)
    h = max(1, limit // (2 * n))
    ranked = np.argsort(mu, kind="stable")
    position = np.arange(n)
    near = [
        _codes(ranked[position[: n - step]], ranked[position[step:]], n)
        for step in range(1, min(h, n - 1) + 1)
    ]
    partners = rng.integers(0, n - 1, (n, h))
    partners += partners >= position[:, None]  # skip the task itself
    far = _codes(np.repeat(position, h), partners.ravel(), n)
    return np.unique(np.concatenate([*near, far]))


def _candidates(n: int, mu: np.ndarray, strategy: str, limit: int, rng: np.random.Generator):
    if n * (n - 1) // 2 <= limit:
        first, second = np.triu_indices(n, 1)
        return _codes(first, second, n)
    if strategy == "posterior":
        return _near_and_random(mu, limit, rng)
    return _uniform_pairs(n, limit, rng)


def _greedy(
    first: np.ndarray, second: np.ndarray, order: np.ndarray, budget: int, cap: int, n: int
) -> list[int]:
    """Candidates taken in `order`, spreading first: passes with a cap of 1, 2, ... `cap` pairs
    per task, each taking the candidates whose tasks are both under it, up to `budget`."""
    used = np.zeros(n, dtype=np.int64)
    taken = np.zeros(len(first), dtype=bool)
    chosen: list[int] = []
    for level in range(1, cap + 1):
        for k in order:
            i, j = first[k], second[k]
            if not taken[k] and used[i] < level and used[j] < level:
                used[i] += 1
                used[j] += 1
                taken[k] = True
                chosen.append(int(k))
                if len(chosen) == budget:
                    return chosen
    return chosen


def _reference(
    first, second, mu, degree, budget: int, cap: int, rng: np.random.Generator
) -> list[int]:
    distance = np.abs(mu[first] - mu[second])
    summed = degree[first] + degree[second]
    share = REFERENCE_SHARE
    while True:
        qualifies = (distance <= np.quantile(distance, share)) & (
            summed <= np.quantile(summed, share)
        )
        if qualifies.sum() >= budget or share == 1.0:
            order = rng.permutation(np.flatnonzero(qualifies))
            chosen = _greedy(first, second, order, budget, cap, len(mu))
            if len(chosen) == budget or share == 1.0:
                return chosen
        share = min(1.0, share * REFERENCE_WIDEN)


def _measured(fit: Fit, exclude: pd.DataFrame | None) -> np.ndarray:
    """Codes of the pairs the fit saw, plus those in `exclude` (ids unknown to the fit ignored)."""
    cells = fit.cells
    n = len(fit.tasks)
    codes = [_codes(cells["a_idx"].to_numpy(), cells["b_idx"].to_numpy(), n)]
    if exclude is not None and len(exclude):
        index = pd.Series(np.arange(n), index=fit.tasks["task_id"].to_numpy())
        a = index.reindex(exclude["task_a"].astype(str)).to_numpy()
        b = index.reindex(exclude["task_b"].astype(str)).to_numpy()
        known = ~(np.isnan(a) | np.isnan(b))
        codes.append(_codes(a[known].astype(np.int64), b[known].astype(np.int64), n))
    return np.unique(np.concatenate(codes))


def select(
    fit: Fit | str | Path,
    budget: int,
    strategy: str = "posterior",
    seed: int = 0,
    max_per_task: int | None = None,
    exclude: pd.DataFrame | None = None,
    candidates: int = CANDIDATES,
) -> pd.DataFrame:
    """The next `budget` pairs, each in both orders: columns `task_a` (shown first), `task_b`,
    `condition` (when the fit has several), `pair` (rank of the pair, from 0) and `score` (the
    information in nats for `posterior`, |mu_a - mu_b| for `reference`, empty for `random`).

    Fewer pairs come back when too few new pairs are left under the cap, which is kept in
    `attrs["max_per_task"]`."""
    if strategy not in STRATEGIES:
        raise SelectError(f"unknown strategy '{strategy}'; choose one of {', '.join(STRATEGIES)}")
    if budget < 1 or candidates < 1:
        raise SelectError(f"budget and candidates must be positive (got {budget}, {candidates})")
    if max_per_task is not None and max_per_task < 1:
        raise SelectError(f"max_per_task must be positive (got {max_per_task})")
    fit = fit if isinstance(fit, Fit) else load_fit(fit)
    n = len(fit.tasks)
    cap = max_per_task or default_cap(budget, n)
    rng = np.random.default_rng(seed)
    mu = post.draws(fit.posterior, "mu").mean(axis=1)
    codes = _candidates(n, mu, strategy, candidates, rng)
    codes = codes[~np.isin(codes, _measured(fit, exclude))]
    first, second = _split(codes, n)
    score = np.full(len(codes), np.nan)
    if strategy == "posterior":
        score = information(fit, first, second)
        shuffled = rng.permutation(len(codes))  # ties fall in a seeded order
        order = shuffled[np.argsort(-score[shuffled], kind="stable")]
        chosen = _greedy(first, second, order, budget, cap, n)
    elif strategy == "random":
        chosen = _greedy(first, second, rng.permutation(len(codes)), budget, cap, n)
    else:
        degree = fit.task_counts.set_index("task_id")["n_trials"]
        degree = degree.reindex(fit.tasks["task_id"], fill_value=0).to_numpy()
        score = np.abs(mu[first] - mu[second])
        chosen = _reference(first, second, mu, degree, budget, cap, rng) if len(codes) else []
    return _both_orders(fit, first[chosen], second[chosen], score[chosen], cap)


def _both_orders(fit: Fit, first: np.ndarray, second: np.ndarray, score: np.ndarray, cap: int):
    ids = fit.tasks["task_id"].to_numpy()
    rank = np.arange(len(first))
    table = pd.DataFrame(
        {
            "task_a": ids[np.column_stack([first, second]).ravel()],
            "task_b": ids[np.column_stack([second, first]).ravel()],
            "pair": np.repeat(rank, 2),
            "score": np.repeat(score, 2),
        }
    )
    if len(fit.conditions) > 1:
        table.insert(2, "condition", fit.conditions[0])
    table.attrs["max_per_task"] = cap
    return table
