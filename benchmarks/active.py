"""Active learning on the simulated engine: the posterior strategy against random pairs and the
reference heuristic.

For each seed: a realistic truth (`SimulationConfig.realistic`, 500 tasks) and 2,000 held-out
pairs drawn uniformly among those outside round 0, never asked by any strategy, with outcomes
simulated from the truth in both orders. For each strategy, the loop of `bayespref.active`
(simulated engine, the loop's NUTS fits, no early stop): round 0 is a random regular graph of
1,000 trials (shared by the strategies: it does not depend on them), then rounds of 500 new pairs
(1,000 trials) up to 10,000 trials. After each round, from that round's fit:
  spearman        Spearman correlation of the posterior means of mu with the true mu
  heldout_loglik  mean log P(held-out outcome) under the posterior predictive mean
  mean_sd         mean posterior sd of mu
Prints the table averaged over seeds and writes benchmarks/results/active.csv. Usage:
    python benchmarks/active.py [--quick] [--seeds 0,1,2] [--work DIR]
`--quick`: 100 tasks, rounds of 200 trials up to 800, one seed (a few minutes), written to
active_quick.csv so that it never replaces the full results. `--work` keeps the run folders (and
resumes an interrupted benchmark); by default they go to a temporary folder.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

import bayespref as bp
from bayespref.collect.design import pair_design
from bayespref.collect.engines import EngineOptions
from bayespref.collect.plan import CollectConfig
from bayespref.data.simulation import Simulation
from bayespref.model.choice import first_choice_probability, first_choice_z
from bayespref.workflows.active import ActiveSettings, initial_degree, run_active

STRATEGIES = ("posterior", "random", "reference")
RESULTS = Path(__file__).parent / "results"


def heldout_pairs(
    simulation: Simulation, count: int, asked: set[tuple[str, str]], seed: int
) -> pd.DataFrame:
    """`count` random unordered pairs outside `asked`, in both orders, with simulated choices."""
    rng = np.random.default_rng([seed, 7])
    ids = simulation.truth["task_id"].to_numpy()
    chosen: set[tuple[str, str]] = set()
    while len(chosen) < count:
        a, b = sorted(rng.choice(ids, 2, replace=False))
        if (a, b) not in asked:
            chosen.add((a, b))
    pairs = sorted(chosen)
    first = np.array([p for a, b in pairs for p in (a, b)])
    second = np.array([p for a, b in pairs for p in (b, a)])
    index = pd.Series(np.arange(len(ids)), index=ids)
    a_idx, b_idx = index[first].to_numpy(), index[second].to_numpy()
    truth = simulation.truth
    z = first_choice_z(
        truth["mu"].to_numpy(),
        truth["sigma"].to_numpy(),
        simulation.parameters["position_bias"],
        a_idx,
        b_idx,
        None,
        "global",
    )
    chose_first = rng.random(len(z)) < first_choice_probability(z, "probit")
    return pd.DataFrame({"task_a": first, "task_b": second, "chose_first": chose_first})


def evaluate(fit: bp.Fit, truth: pd.DataFrame, heldout: pd.DataFrame) -> dict[str, float]:
    table = fit.utilities.set_index("task_id").reindex(truth["task_id"])
    p = bp.predict(fit, heldout[["task_a", "task_b"]])["p_first_mean"].to_numpy()
    p = np.clip(p, 1e-12, 1 - 1e-12)
    y = heldout["chose_first"].to_numpy()
    return {
        "spearman": float(spearmanr(table["mu_mean"], truth["mu"]).statistic),
        "heldout_loglik": float(np.mean(np.where(y, np.log(p), np.log1p(-p)))),
        "mean_sd": float(table["mu_sd"].mean()),
    }


def run_seed(args: argparse.Namespace, seed: int, work: Path) -> list[dict]:
    simulation = bp.simulate(bp.SimulationConfig.realistic(n_tasks=args.tasks, seed=seed))
    truth_dir = bp.write_simulation(simulation, work / f"seed-{seed}" / "truth")
    degree = initial_degree(args.batch, args.tasks)
    design = pair_design(list(simulation.tasks["task_id"]), degree, 1, seed)
    heldout = heldout_pairs(simulation, args.heldout, {tuple(sorted(t[:2])) for t in design}, seed)
    config = CollectConfig(engine="simulated", model=f"simulator:realistic-{seed}", seed=seed)
    settings = ActiveSettings(rounds=args.rounds, batch=args.batch, settled_rank=None)
    options = EngineOptions(truth=str(truth_dir))
    rows = []
    for strategy in STRATEGIES:
        out = work / f"seed-{seed}" / strategy
        shared = work / f"seed-{seed}" / STRATEGIES[0] / "round-000"
        if strategy != STRATEGIES[0] and not (out / "round-000").exists():
            shutil.copytree(shared, out / "round-000")
        started = time.perf_counter()
        result = run_active(
            config,
            replace(settings, strategy=strategy),
            simulation.tasks,
            out,
            options,
            batch_size=1000,
            exclude=heldout,
        )
        for state in result.rounds:
            fit = bp.load_fit(out / f"round-{state.round:03d}" / "fit")
            scores = evaluate(fit, simulation.truth, heldout)
            rows.append({"strategy": strategy, "seed": seed, "trials": state.trials, **scores})
        print(
            f"seed {seed} {strategy}: {len(result.rounds)} rounds in "
            f"{time.perf_counter() - started:.0f} s; final {rows[-1]}",
            flush=True,
        )
    return rows


def summarize(results: pd.DataFrame) -> str:
    """The table averaged over seeds, and the two claims of the issue checked."""
    mean = results.groupby(["trials", "strategy"])[["spearman", "heldout_loglik", "mean_sd"]].mean()
    table = mean.unstack("strategy")
    lines = [table.to_string(float_format=lambda v: f"{v:.4f}")]
    spearman = table["spearman"]
    final = spearman.index.max()
    target = spearman.loc[final, "random"]
    reached = spearman.index[spearman["posterior"] >= target]
    if len(reached):
        saving = 1 - reached.min() / final
        lines.append(
            f"posterior reaches random's final Spearman ({target:.4f} at {final} trials) at "
            f"{reached.min()} trials: {100 * saving:.0f}% fewer"
        )
    else:
        lines.append(f"posterior never reaches random's final Spearman ({target:.4f})")
    for metric in ("spearman", "heldout_loglik"):
        behind = table[metric].index[table[metric]["posterior"] < table[metric]["reference"]]
        lines.append(
            f"posterior >= reference in {metric} at every budget: {len(behind) == 0}"
            + (f" (behind at {list(behind)})" if len(behind) else "")
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small and fast (a few minutes)")
    parser.add_argument("--seeds", type=lambda s: [int(x) for x in s.split(",")], default=None)
    parser.add_argument("--work", type=Path, default=None, help="keep run folders here")
    args = parser.parse_args()
    args.tasks, args.batch, args.rounds, args.heldout = (
        (100, 100, 4, 500) if args.quick else (500, 500, 10, 2000)
    )
    args.seeds = args.seeds or ([0] if args.quick else [0, 1, 2])
    work = args.work or Path(tempfile.mkdtemp(prefix="bayespref-active-"))
    rows = [row for seed in args.seeds for row in run_seed(args, seed, work)]
    results = pd.DataFrame(rows)
    path = RESULTS / ("active_quick.csv" if args.quick else "active.csv")
    RESULTS.mkdir(exist_ok=True)
    results.to_csv(path, index=False)
    print(
        f"\nActive learning, {args.tasks} tasks, rounds of {2 * args.batch} trials, seeds "
        f"{args.seeds}; means over seeds"
    )
    print(summarize(results))
    print(f"wrote {path}")
    if args.work is None:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
