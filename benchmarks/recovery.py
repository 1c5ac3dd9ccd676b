"""Parameter recovery at the core issue's size: prints Pearson, coverage, position bias, r_hat.

200 tasks, 5 datasets, 6,000 trials, position bias 0.3, default model and sampler settings.
Usage: python benchmarks/recovery.py [--seed 7]
"""

from __future__ import annotations

import argparse

import numpy as np

import bayespref as bp
from bayespref.posterior import draws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    simulation = bp.simulate(
        n_tasks=200, n_datasets=5, n_comparisons=6000, position_bias=0.3, seed=args.seed
    )
    result = bp.fit(
        simulation.comparisons,
        simulation.tasks,
        settings=bp.SamplerSettings(seed=3),
        progressbar=False,
    )
    truth = simulation.truth.set_index("task_id").loc[result.tasks["task_id"], "mu"].to_numpy()
    mu = draws(result.posterior, "mu")
    low, high = np.quantile(mu, [0.05, 0.95], axis=1)
    bias = result.params.set_index("name").loc["position_bias"]
    measures, sampler = result.diagnostics.measures, result.diagnostics.sampler
    print(
        f"pearson {np.corrcoef(mu.mean(axis=1), truth)[0, 1]:.3f}  "
        f"coverage90 {np.mean((truth >= low) & (truth <= high)):.3f}  "
        f"position_bias {bias['mean']:.3f} [{bias['low']:.3f}, {bias['high']:.3f}] (truth 0.3)  "
        f"max_rhat {measures['max_r_hat']:.4f}  min_ess {measures['min_ess_bulk']:.0f}  "
        f"divergences {measures['divergences']}  wall {sampler['wall_seconds']} s"
    )


if __name__ == "__main__":
    main()
