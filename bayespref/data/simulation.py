"""Ground-truth generator: tasks, Thurstonian choices with position bias, refusals, truth files.

Units and location follow the model: per-dataset noise levels have geometric mean 1, dataset
means sum to zero and each dataset's utilities average to its mean, so true values are directly
comparable with posterior draws.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit, ndtr

from bayespref.io.atomic import make_folder, write_atomically
from bayespref.io.tables import write_table


@dataclass(frozen=True)
class SimulationConfig:
    n_tasks: int = 200
    n_datasets: int = 5
    n_comparisons: int = 6000
    position_bias: float = 0.3  # added to the first-shown task's advantage; negative favours second
    seed: int = 0
    dataset_mean_sd: float = 1.0  # spread of dataset mean utilities
    task_sd: float = 1.0  # typical within-dataset spread of utilities
    dataset_spread_sd: float = 0.2  # spread of log within-dataset spreads between datasets
    dataset_sigma_sd: float = 0.3  # spread of log noise between datasets
    task_sigma_sd: float = 0.2  # spread of log noise between tasks of a dataset
    repeats: int = 1  # trials per unordered pair, each in a random order
    refusal_rate: float = 0.0  # typical probability that a trial is refused
    refusal_utility_corr: float = -0.7  # correlation of refusal propensity with utility
    unparsed_rate: float = 0.0
    # Optional per-dataset position biases (a pair takes the mean of its two datasets').
    position_bias_by_dataset: tuple[float, ...] | None = None
    # One tuple per condition beyond the reference 'default': its utility shift per dataset.
    condition_shifts: tuple[tuple[float, ...], ...] = ()
    lapse_rate: float = 0.0  # share of answers that ignore the tasks (a coin flip)
    # Per-task lapse rates: logit sd between tasks around logit(lapse_rate); a pair lapses at
    # the mean of its two tasks' rates.
    task_lapse_sd: float = 0.0
    # An effect per unordered pair shared by all its repeats, in units of the pair's noise
    # sqrt((sigma_a^2 + sigma_b^2) / 2): repeats agree more than new pairs of the same tasks do,
    # as in real choices.
    pair_sd: float = 0.0
    # Per-dataset position biases drawn around position_bias with this sd (when not given).
    position_bias_sd: float = 0.0
    one_order: bool = False  # every repeat of a pair in one random order, as real runs ask them
    # Optional position bias per ordered dataset pair, row = first-shown task's dataset, column =
    # second's (n_datasets x n_datasets); it replaces the global and per-dataset biases.
    position_bias_by_pair: tuple[tuple[float, ...], ...] | None = None
    # Share of the pairs chosen close in utility, as active selection chooses them after a
    # random first round (_close_pairs); the rest are random.
    close_pairs: float = 0.0

    @classmethod
    def realistic(cls, n_tasks: int = 300, n_datasets: int = 5, seed: int = 0) -> SimulationConfig:
        """Like real revealed-preference data (the gemma-3-27b development set measured in
        benchmarks/real.py): about 15 partners per task, 5 repeats per pair in one order, about
        86% of repeated pairs unanimous, an effect per pair shared by its repeats (so new pairs
        are far less predictable than repeats), position biases that differ by dataset, noise
        levels that differ by dataset, and under 1% refusals. Sizes set so that the default
        model's fit (beta-binomial cells) measures what it measures on the real set (utility sd
        in noise units, sd of dataset means, sd of log noise between datasets; README, "Real
        data")."""
        return cls(
            n_tasks=n_tasks,
            n_datasets=n_datasets,
            n_comparisons=n_tasks * 15 // 2 * 5,
            position_bias=0.0,
            position_bias_sd=2.0,
            seed=seed,
            dataset_mean_sd=6.8,
            task_sd=5.8,
            dataset_spread_sd=0.5,
            dataset_sigma_sd=0.55,
            repeats=5,
            refusal_rate=0.003,
            pair_sd=3.5,
            one_order=True,
        )

    def __post_init__(self) -> None:
        if self.n_tasks < 2:
            raise ValueError("n_tasks must be at least 2")
        if not 1 <= self.n_datasets <= self.n_tasks:
            raise ValueError("n_datasets must be between 1 and n_tasks")
        if self.repeats < 1 or self.n_comparisons < 1:
            raise ValueError("repeats and n_comparisons must be positive")
        if not 0 <= self.refusal_rate < 1 or not 0 <= self.unparsed_rate < 1:
            raise ValueError("refusal_rate and unparsed_rate must be in [0, 1)")
        if not -1 <= self.refusal_utility_corr <= 1:
            raise ValueError("refusal_utility_corr must be in [-1, 1]")
        if not 0 <= self.lapse_rate <= 1:
            raise ValueError("lapse_rate must be in [0, 1]")
        if self.task_lapse_sd < 0 or (self.task_lapse_sd > 0 and not 0 < self.lapse_rate < 1):
            raise ValueError("task_lapse_sd must be >= 0, and > 0 only with lapse_rate in (0, 1)")
        by_dataset = [self.position_bias_by_dataset or ()] + list(self.condition_shifts)
        if any(values and len(values) != self.n_datasets for values in by_dataset):
            raise ValueError(
                "per-dataset position biases and condition shifts need n_datasets values"
            )
        by_pair = self.position_bias_by_pair
        if by_pair is not None and np.shape(by_pair) != (self.n_datasets, self.n_datasets):
            raise ValueError("position_bias_by_pair needs n_datasets rows of n_datasets values")
        if not 0 <= self.close_pairs < 1:
            raise ValueError("close_pairs must be in [0, 1)")
        max_pairs = self.n_tasks * (self.n_tasks - 1) // 2
        if -(-self.n_comparisons // self.repeats) > max_pairs:
            raise ValueError(
                f"{self.n_comparisons} comparisons at {self.repeats} repeats need more distinct "
                f"pairs than {self.n_tasks} tasks have ({max_pairs})"
            )


@dataclass(frozen=True)
class Simulation:
    config: SimulationConfig
    tasks: pd.DataFrame  # task_id, dataset, prompt
    comparisons: pd.DataFrame  # the comparisons contract
    truth: pd.DataFrame  # task_id, dataset, mu, sigma, refusal_logit
    parameters: dict  # global truth: position_bias, dataset means, spreads, noise levels


def _zero_sum(values: np.ndarray) -> np.ndarray:
    return values - values.mean()


def _random_pairs(n_tasks: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """Distinct unordered pairs: a random cycle through all tasks (connected), then random edges."""
    order = rng.permutation(n_tasks)
    cycle = np.stack([order, np.roll(order, -1)], axis=1)[: n_tasks if n_tasks > 2 else 1]
    pairs = {tuple(sorted(map(int, pair))) for pair in cycle[:n_pairs]}
    while len(pairs) < n_pairs:
        batch = rng.integers(0, n_tasks, size=(2 * (n_pairs - len(pairs)) + 16, 2))
        for i, j in batch[batch[:, 0] != batch[:, 1]]:
            pairs.add((min(i, j), max(i, j)))
            if len(pairs) == n_pairs:
                break
    return np.array(sorted(pairs), dtype=np.int64)


def _close_pairs(
    mu: np.ndarray, sigma: np.ndarray, pairs: np.ndarray, n_close: int, rng: np.random.Generator
) -> np.ndarray:
    """`pairs` and `n_close` more distinct pairs, each chosen as active selection chooses: the
    task with the fewest partners so far (ties at random) with the task nearest it in z =
    |m_a - m_b| / sqrt(s_a^2 + s_b^2) among those it has not met, where m is each utility as a
    first round's fit would see it, off by one noise unit (sd sigma)."""
    n = len(mu)
    seen = mu + sigma * rng.normal(size=n)
    met = [{i} for i in range(n)]
    for a, b in pairs:
        met[a].add(b)
        met[b].add(a)
    partners = np.array([len(m) - 1 for m in met], dtype=float)
    chosen = []
    for _ in range(n_close):
        first = int(np.argmin(np.where(partners < n - 1, partners, np.inf) + rng.random(n) / 2))
        distance = np.abs(seen - seen[first]) / np.hypot(sigma, sigma[first])
        distance[list(met[first])] = np.inf
        second = int(np.argmin(distance))
        met[first].add(second)
        met[second].add(first)
        partners[[first, second]] += 1
        chosen.append((min(first, second), max(first, second)))
    return np.vstack([pairs, np.array(chosen, dtype=np.int64).reshape(-1, 2)])


def simulate(config: SimulationConfig | None = None, **overrides: float) -> Simulation:
    """Draw a ground truth and comparisons from it; the same config gives the same data."""
    # One long function on purpose: the order of the draws below fixes every seed's data.
    config = config or SimulationConfig(**overrides)
    rng = np.random.default_rng(config.seed)
    n, n_datasets = config.n_tasks, config.n_datasets
    datasets = [f"dataset_{d}" for d in range(n_datasets)]
    dataset_idx = np.arange(n) % n_datasets

    dataset_mean = _zero_sum(rng.normal(0, config.dataset_mean_sd, n_datasets))
    if n_datasets == 1:
        dataset_mean[:] = 0.0
    dataset_spread = config.task_sd * np.exp(rng.normal(0, config.dataset_spread_sd, n_datasets))
    offset = rng.normal(size=n)
    offset -= (np.bincount(dataset_idx, offset) / np.bincount(dataset_idx))[dataset_idx]
    mu = dataset_mean[dataset_idx] + dataset_spread[dataset_idx] * offset
    log_dataset_sigma = _zero_sum(rng.normal(0, config.dataset_sigma_sd, n_datasets))
    sigma = np.exp(log_dataset_sigma[dataset_idx] + config.task_sigma_sd * rng.normal(size=n))

    standardized = (mu - mu.mean()) / (mu.std() or 1.0)
    corr = config.refusal_utility_corr
    propensity = corr * standardized + np.sqrt(1 - corr**2) * rng.normal(size=n)
    base = logit(config.refusal_rate) if config.refusal_rate > 0 else -np.inf
    refusal_logit = base + propensity

    n_pairs = -(-config.n_comparisons // config.repeats)
    n_close = round(config.close_pairs * n_pairs)
    pairs = _random_pairs(n, n_pairs - n_close, rng)
    if n_close:  # from a stream of their own, so that every other draw stays as it was
        pairs = _close_pairs(mu, sigma, pairs, n_close, np.random.default_rng([config.seed, 1]))
    pairs = np.repeat(pairs, config.repeats, axis=0)
    pairs = pairs[rng.permutation(len(pairs))[: config.n_comparisons]]
    swap = rng.random(len(pairs)) < 0.5
    first = np.where(swap, pairs[:, 1], pairs[:, 0])
    second = np.where(swap, pairs[:, 0], pairs[:, 1])

    refused = rng.random(len(pairs)) < expit((refusal_logit[first] + refusal_logit[second]) / 2)
    unparsed = ~refused & (rng.random(len(pairs)) < config.unparsed_rate)
    uniform = rng.random(len(pairs))
    # Draws for optional features come last, so default configs keep their random streams.
    n_conditions = 1 + len(config.condition_shifts)
    condition = rng.integers(0, n_conditions, len(pairs)) if n_conditions > 1 else 0
    shifts = np.vstack([np.zeros(n_datasets), *config.condition_shifts])
    utility = mu[None, :] + shifts[:, dataset_idx]  # (condition, task)
    pair_index = np.unique(pairs[:, 0] * n + pairs[:, 1], return_inverse=True)[1]
    if config.one_order:
        swap = (rng.random(pair_index.max() + 1) < 0.5)[pair_index]
        first = np.where(swap, pairs[:, 1], pairs[:, 0])
        second = np.where(swap, pairs[:, 0], pairs[:, 1])
    bias = config.position_bias
    per_dataset = config.position_bias_by_dataset
    if per_dataset is None and config.position_bias_sd > 0:
        per_dataset = tuple(rng.normal(config.position_bias, config.position_bias_sd, n_datasets))
    if per_dataset is not None:
        per_dataset = np.asarray(per_dataset)
        bias = (per_dataset[dataset_idx[first]] + per_dataset[dataset_idx[second]]) / 2
    if config.position_bias_by_pair is not None:
        bias = np.asarray(config.position_bias_by_pair)[dataset_idx[first], dataset_idx[second]]
    scale = np.sqrt(sigma[first] ** 2 + sigma[second] ** 2)
    pair_effect = 0.0
    if config.pair_sd > 0:
        pair_effect = rng.normal(0, config.pair_sd, pair_index.max() + 1)[pair_index]
        # In the pair's noise units (scale / sqrt 2 is 1 for two tasks of noise 1): repeats then
        # agree beyond their trial noise alike in noisy and calm datasets, as on the real set.
        pair_effect = np.where(first == pairs[:, 0], pair_effect, -pair_effect) * scale / np.sqrt(2)
    advantage = utility[condition, first] - utility[condition, second] + bias + pair_effect
    p_first = ndtr(advantage / scale)
    lapse = np.full(n, config.lapse_rate)
    if config.task_lapse_sd > 0:
        lapse = expit(logit(config.lapse_rate) + config.task_lapse_sd * rng.normal(size=n))
    if config.lapse_rate > 0:
        pair_lapse = (lapse[first] + lapse[second]) / 2
        p_first = pair_lapse / 2 + (1 - pair_lapse) * p_first
    chose_first = uniform < p_first
    choice = np.select([refused, unparsed, chose_first], ["refusal", "unparsed", "a"], "b")
    condition_names = np.array(["default"] + [f"condition_{c}" for c in range(1, n_conditions)])

    task_ids = np.array([f"t{i:05d}" for i in range(n)])
    task_datasets = np.array(datasets)[dataset_idx]
    tasks = pd.DataFrame(
        {
            "task_id": task_ids,
            "dataset": task_datasets,
            "prompt": [f"Simulated task {i} from {d}." for i, d in enumerate(task_datasets)],
        }
    )
    comparisons = pd.DataFrame(
        {
            "task_a": task_ids[first],
            "task_b": task_ids[second],
            "choice": choice,
            "dataset_a": task_datasets[first],
            "dataset_b": task_datasets[second],
            "condition": condition_names[condition],
            "sample": 0,
            "protocol": "simulated",
            "model": f"simulator(seed={config.seed})",
            "p_a": p_first,
        }
    )
    truth = pd.DataFrame(
        {
            "task_id": task_ids,
            "dataset": task_datasets,
            "mu": mu,
            "sigma": sigma,
            "refusal_logit": refusal_logit,
            "lapse": lapse,
        }
    )
    parameters = {
        "position_bias": config.position_bias,
        "position_bias_by_dataset": None if per_dataset is None else list(per_dataset),
        "position_bias_by_pair": (
            None
            if config.position_bias_by_pair is None
            else np.asarray(config.position_bias_by_pair).tolist()
        ),
        "condition_shifts": [list(shift) for shift in config.condition_shifts],
        "lapse_rate": config.lapse_rate,
        "datasets": datasets,
        "dataset_mean": dataset_mean.tolist(),
        "dataset_spread": dataset_spread.tolist(),
        "sigma_dataset": np.exp(log_dataset_sigma).tolist(),
        "config": asdict(config),
    }
    return Simulation(config, tasks, comparisons, truth, parameters)


def simulate_completion_refusals(
    truth: pd.DataFrame,
    completions: int,
    shift: float = 0.0,
    slope: float = 1.0,
    seed: int = 0,
) -> pd.DataFrame:
    """Refusal counts of `completions` completions per task of a simulation's truth, each
    refused with probability logistic(shift + slope * refusal_logit): the per-task columns that
    `bayespref refusals` writes (`task_id`, `dataset`, `n`, `refusals`). `shift` is the simulated
    author's `completion_refusal_shift` (collect/engines/simulated_authors.py)."""
    rng = np.random.default_rng(seed)
    probability = expit(shift + slope * truth["refusal_logit"].to_numpy())
    return pd.DataFrame(
        {
            "task_id": truth["task_id"].to_numpy(),
            "dataset": truth["dataset"].to_numpy(),
            "n": completions,
            "refusals": rng.binomial(completions, probability),
        }
    )


def write_simulation(simulation: Simulation, out: str | Path) -> Path:
    """Write tasks.csv, comparisons.csv, truth.csv and truth.json into `out`."""
    out = Path(out)
    make_folder(out)
    write_table(simulation.tasks, out / "tasks.csv")
    write_table(simulation.comparisons, out / "comparisons.csv")
    write_table(simulation.truth, out / "truth.csv")
    write_atomically(out / "truth.json", json.dumps(simulation.parameters, indent=2) + "\n")
    return out
