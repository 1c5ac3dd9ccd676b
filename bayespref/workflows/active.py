"""The active-learning loop: collect, fit, select, in rounds, resumable at any point.

Round 0 asks a random regular graph (`degree` partners per task, by default about one batch:
max(2, round(2 batch / n_tasks))); each later round asks the `batch` pairs that
`bayespref.select` picks from the previous round's fit, never a pair asked before, each in both
orders. A run folder holds:

  active.json            the collection and loop settings; a rerun must match them (except rounds,
                         which may grow to extend a run that stopped at its budget)
  comparisons.parquet    every answered trial of the rounds so far, with a `round` column
  round-000/pairs.csv    the round's pairs, both orders
  round-000/trials/      a collect folder (manifest.json, shards/, comparisons.parquet)
  round-000/fit/         the fit of all trials of rounds 0..r
  round-000/state.json   written last: trials so far, how far the posterior moved, the decision

Stopping: after round r >= 1 the posterior has settled when the Spearman correlation of the
posterior means of mu between rounds r - 1 and r exceeds 0.995 and the mean posterior sd of mu
fell by less than 2%; the loop stops then, after `rounds` rounds, or when no new pair is left.

Fits: NUTS, 2 chains of 300 draws after 300 tuning steps, seeded with the config seed + round
(not warm-started: `fit_data` takes no initial values, and PyMC's NumPyro sampler would tune
afresh anyway). `method="approx"` switches to the Laplace approximation of inference/approx.py;
it is not the default because on the benchmark's round-0 data its intervals were far too narrow
(mean sd of mu 0.61 against NUTS's 5.03, 94% intervals covering 12% of true utilities against
94%), and selection feeds on that uncertainty.

Resuming: every file is written atomically and a round's trials go through the collect store, so
rerunning the same command after a kill continues in the round it stopped in: answered trials are
kept (none asked twice), a saved fit is loaded rather than redone, and a fit or selection redone
gets the same seed (config seed + round), hence the same pairs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import pandas as pd
from scipy.stats import spearmanr

from bayespref.analysis.selection import STRATEGIES, select
from bayespref.collect.design import pair_design
from bayespref.collect.engines import Engine, EngineOptions
from bayespref.collect.plan import CollectConfig, Trial, manifest_config, plan
from bayespref.collect.runner import (
    FAILED_BATCHES_LIMIT,
    MANIFEST_FORMAT,
    CollectResult,
    answer_pending,
    finish_run,
    start_engine_for,
)
from bayespref.collect.store import OUTPUTS, RunStore
from bayespref.collect.templates import Template, load_template
from bayespref.data.choice_data import load_choice_data
from bayespref.data.tasks import validate_task_set
from bayespref.errors import CollectError
from bayespref.inference import device
from bayespref.inference.settings import METHODS, SamplerSettings
from bayespref.io.atomic import write_json
from bayespref.io.locking import FolderLock
from bayespref.io.tables import read_table, write_table
from bayespref.model.spec import ModelSpec, resolve_spec
from bayespref.posterior.fit import Fit, load_fit
from bayespref.workflows.fitting import fit_data

SETTINGS_FILE = "active.json"
STATE_FILE = "state.json"
# The loop's fits: short NUTS runs (see ActiveSettings.method).
LOOP_SAMPLER = SamplerSettings(chains=2, draws=300, tune=300)


@dataclass(frozen=True)
class ActiveSettings:
    rounds: int = 10  # round 0 (the initial graph) included
    batch: int = 500  # new pairs per round, each asked in both orders
    strategy: str = "posterior"  # see bayespref.select
    max_per_task: int | None = None  # None: select's default cap
    model: str = "hierarchical"
    settled_rank: float | None = 0.995  # None: never stop early
    settled_sd_drop: float = 0.02
    sampler: SamplerSettings = field(default_factory=lambda: LOOP_SAMPLER)
    # "nuts", or "approx" (Laplace, inference/approx.py): not the default, as its intervals are far
    # too narrow on sparse, nearly deterministic data, where selection most needs them.
    method: str = "nuts"

    def __post_init__(self) -> None:
        if self.rounds < 1 or self.batch < 1:
            raise ValueError(f"rounds and batch must be positive (got {self.rounds}, {self.batch})")
        if self.method not in METHODS:
            raise ValueError(f"unknown method '{self.method}'; choose one of {', '.join(METHODS)}")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"unknown strategy '{self.strategy}'; choose one of {', '.join(STRATEGIES)}"
            )

    def settled(self, rank_corr: float, sd_drop: float) -> bool:
        """The stopping criterion: means in the same order, uncertainty no longer falling."""
        if self.settled_rank is None:
            return False
        return rank_corr > self.settled_rank and sd_drop < self.settled_sd_drop


@dataclass(frozen=True)
class RoundState:
    round: int
    pairs: int  # new pairs asked this round
    trials: int  # answered trials of rounds 0..round
    mean_sd: float  # mean posterior sd of mu
    rank_corr: float | None  # Spearman of posterior means with the previous round's
    sd_drop: float | None  # relative fall of mean_sd since the previous round
    settled: bool


@dataclass(frozen=True)
class ActiveResult:
    out: Path
    rounds: list[RoundState]
    stopped: str  # "settled", "budget" or "exhausted"


def initial_degree(batch: int, n_tasks: int) -> int:
    """Partners per task in round 0, so that it asks about one batch of pairs."""
    return max(2, round(2 * batch / n_tasks))


def fit_round(
    comparisons: pd.DataFrame,
    tasks: pd.DataFrame,
    spec: ModelSpec,
    settings: SamplerSettings,
    method: str = "nuts",
) -> Fit:
    """One round's fit of all trials so far (the pointwise log-likelihood is not kept)."""
    data = load_choice_data(comparisons, tasks)
    return fit_data(data, spec, settings, progressbar=False, log_likelihood=False, method=method)


def _digest(frame: pd.DataFrame | None) -> str | None:
    if frame is None:
        return None
    return hashlib.sha256(frame[["task_a", "task_b"]].to_csv(index=False).encode()).hexdigest()[:16]


def _check_settings(out: Path, settings: dict) -> None:
    path = out / SETTINGS_FILE
    if path.exists():
        before = json.loads(path.read_text())
        changed = sorted(
            key
            for key in set(before) | set(settings)
            if key != "rounds" and before.get(key) != settings.get(key)
        )
        if changed:
            raise CollectError(
                f"'{path}' belongs to a different active run (changed: {', '.join(changed)}); "
                "rerun with the same settings to resume it, or choose another --out folder"
            )
    write_json(settings, path)


def _unordered(pairs: pd.DataFrame) -> list[tuple[str, str]]:
    """Each pair once, in the table's order."""
    seen: dict[tuple[str, str], None] = {}
    for a, b in zip(pairs["task_a"], pairs["task_b"], strict=True):
        seen.setdefault((min(a, b), max(a, b)), None)
    return list(seen)


def _pair_trials(
    config: CollectConfig, tasks: pd.DataFrame, template: Template, pairs: pd.DataFrame
) -> list[Trial]:
    """The runner's trials for these pairs: both orders, `samples` times, with the keys a regular
    collection would give them."""
    by_id = tasks.set_index("task_id", drop=False)
    one_pair = replace(config, degree=None)
    return [
        trial for a, b in _unordered(pairs) for trial in plan(one_pair, by_id.loc[[a, b]], template)
    ]


class _Loop:
    """One run of the loop over a run folder (holding its lock)."""

    def __init__(
        self,
        config: CollectConfig,
        settings: ActiveSettings,
        tasks: pd.DataFrame,
        out: Path,
        options: EngineOptions,
        batch_size: int,
        exclude: pd.DataFrame | None,
    ) -> None:
        self.config, self.settings, self.tasks, self.out = config, settings, tasks, out
        self.options, self.batch_size, self.exclude = options, batch_size, exclude
        self.template = load_template(config.protocol)
        if self.template.kind != "choice":
            raise CollectError(f"the active loop needs a choice protocol, not '{config.protocol}'")
        self.spec = resolve_spec(settings.model)
        self.degree = config.degree or initial_degree(settings.batch, len(tasks))
        self.engine: Engine | None = None
        self.fits: dict[int, Fit] = {}

    def folder(self, round_: int) -> Path:
        return self.out / f"round-{round_:03d}"

    def pairs(self, round_: int, asked: pd.DataFrame | None) -> pd.DataFrame:
        """The round's pairs in both orders (read back when already chosen); empty when no new
        pair is left."""
        path = self.folder(round_) / "pairs.csv"
        if path.exists():
            return read_table(path)
        if asked is None:
            design = pair_design(list(self.tasks["task_id"]), self.degree, 1, self.config.seed)
            excluded = set(_unordered(self.exclude)) if self.exclude is not None else set()
            pairs = pd.DataFrame(
                [(a, b) for a, b, _ in design if (min(a, b), max(a, b)) not in excluded],
                columns=["task_a", "task_b"],
            )
        else:
            pairs = select(
                self.fit(round_ - 1),
                self.settings.batch,
                self.settings.strategy,
                seed=self.config.seed + round_,
                max_per_task=self.settings.max_per_task,
                exclude=pd.concat([asked, self.exclude])[["task_a", "task_b"]],
            )
        if len(pairs):
            write_table(pairs, path)
        return pairs

    def collect(self, round_: int, pairs: pd.DataFrame) -> CollectResult:
        """Ask the round's pending trials through a resumable collect store."""
        trials = _pair_trials(self.config, self.tasks, self.template, pairs)
        folder = self.folder(round_) / "trials"
        config = manifest_config(self.config, self.tasks, self.template)
        manifest = {
            "format": MANIFEST_FORMAT,
            "config": config | {"degree": None, "round": round_, "pairs": _digest(pairs)},
            "template_text": self.template.text,
        }
        folder.mkdir(parents=True, exist_ok=True)
        with RunStore(folder) as store:
            previous = store.read_manifest()
            if previous is not None and previous["config"] != manifest["config"]:
                raise CollectError(f"'{folder}' holds trials of other pairs or settings")
            store.write_manifest(manifest)
            stopped = answer_pending(
                store,
                trials,
                self.template,
                self.config.condition,
                self.start_engine,
                self.batch_size,
                self.config.max_answer_chars,
            )
            result = finish_run(store, trials, self.config, self.template, self.tasks, manifest)
        if stopped is not None:
            raise CollectError(
                f"round {round_}: the engine failed on {FAILED_BATCHES_LIMIT} batches in a row, "
                f"so the round stopped with {result.completed} of {result.planned} trials "
                f"answered; last error: {stopped}"
            )
        return result

    def start_engine(self) -> Engine:
        if self.engine is None:
            self.engine = start_engine_for(self.config, self.template, self.options)
        return self.engine

    def fit(self, round_: int) -> Fit:
        if round_ not in self.fits:
            self.remember(round_, load_fit(self.folder(round_) / "fit"))
        return self.fits[round_]

    def remember(self, round_: int, fitted: Fit) -> None:
        """Keep this round's fit and the one before it (the next round needs both)."""
        self.fits = {r: fit for r, fit in self.fits.items() if r >= round_ - 1}
        self.fits[round_] = fitted

    def run_round(
        self, round_: int, pairs: pd.DataFrame, asked: pd.DataFrame | None
    ) -> tuple[RoundState, pd.DataFrame]:
        """Collect, fit and judge one round; returns its state and all trials so far."""
        folder = self.folder(round_)
        result = self.collect(round_, pairs)
        if not result.complete:
            raise CollectError(
                f"round {round_}: {result.errors} trials failed (e.g. {result.error_example}); "
                "run the same command again to retry them"
            )
        comparisons = _with_round(asked, result.table, round_)
        write_table(comparisons, self.out / "comparisons.parquet")
        if not (folder / "fit").exists():
            seeded = replace(self.settings.sampler, seed=self.config.seed + round_)
            fitted = fit_round(comparisons, self.tasks, self.spec, seeded, self.settings.method)
            fitted.save(folder / "fit")
            self.remember(round_, fitted)
        state = self.judge(round_, len(pairs) // 2, len(comparisons))
        write_json(asdict(state), folder / STATE_FILE)
        return state, comparisons

    def judge(self, round_: int, n_pairs: int, n_trials: int) -> RoundState:
        now = _utilities(self.fit(round_))
        mean_sd = float(now["mu_sd"].mean())
        if round_ == 0:
            return RoundState(round_, n_pairs, n_trials, mean_sd, None, None, False)
        rank_corr, sd_drop = movement(_utilities(self.fit(round_ - 1)), now)
        settled = self.settings.settled(rank_corr, sd_drop)
        return RoundState(round_, n_pairs, n_trials, mean_sd, rank_corr, sd_drop, settled)


def movement(before: pd.DataFrame, now: pd.DataFrame) -> tuple[float, float]:
    """How far the posterior moved between two rounds' utilities (mu_mean, mu_sd by task): the
    Spearman correlation of the means, and the relative fall of the mean sd."""
    before = before.reindex(now.index)
    rank_corr = float(spearmanr(before["mu_mean"], now["mu_mean"]).statistic)
    return rank_corr, float(1 - now["mu_sd"].mean() / before["mu_sd"].mean())


def _with_round(asked: pd.DataFrame | None, table: Path, round_: int) -> pd.DataFrame:
    """The trials so far, with the round's answered trials appended."""
    trials = pd.read_parquet(table).assign(round=round_)
    return trials if asked is None else pd.concat([asked, trials], ignore_index=True)


def _utilities(fit: Fit) -> pd.DataFrame:
    """mu_mean and mu_sd by task, in the reference condition."""
    table = fit.utilities
    if "condition" in table.columns:
        table = table[table["condition"] == fit.conditions[0]]
    return table.set_index("task_id")[["mu_mean", "mu_sd"]]


def run_active(
    config: CollectConfig,
    settings: ActiveSettings,
    tasks: pd.DataFrame,
    out: str | Path,
    options: EngineOptions | None = None,
    batch_size: int = 256,
    exclude: pd.DataFrame | None = None,
    on_round: Callable[[RoundState], None] | None = None,
) -> ActiveResult:
    """Run (or resume) the loop into `out`. `exclude` lists pairs (task_a, task_b) never to ask,
    e.g. held out for validation; `on_round` is called with each round's state."""
    out = Path(out)
    tasks = validate_task_set(tasks)
    loop = _Loop(config, settings, tasks, out, options or EngineOptions(), batch_size, exclude)
    if config.engine == "vllm":  # vLLM stays loaded while JAX samples, on the same GPU
        device.leave_gpu_to(loop.options.vllm.gpu_memory_utilization)
    recorded = {
        "collect": manifest_config(config, tasks, loop.template),
        "initial_degree": loop.degree,
        "exclude": _digest(exclude),
        **asdict(settings),
    }
    out.mkdir(parents=True, exist_ok=True)
    states: list[RoundState] = []
    stopped = "budget"
    asked: pd.DataFrame | None = None  # every trial of the rounds so far
    with FolderLock(out / ".lock", str(out), CollectError):
        _check_settings(out, recorded)
        for round_ in range(settings.rounds):
            path = loop.folder(round_) / STATE_FILE
            if path.exists():
                state = RoundState(**json.loads(path.read_text()))
                table = loop.folder(round_) / "trials" / OUTPUTS["choice"]
                asked = _with_round(asked, table, round_)
            else:
                pairs = loop.pairs(round_, asked)
                if pairs.empty:
                    stopped = "exhausted"
                    break
                state, asked = loop.run_round(round_, pairs, asked)
            states.append(state)
            if on_round:
                on_round(state)
            if state.settled:
                stopped = "settled"
                break
    return ActiveResult(out, states, stopped)
