"""The model-terms checks of the test suite, printed: refusal correlation, the shift of the
position bias when refusals are read as second-task wins, and a LOO comparison.

Usage: python benchmarks/model_terms.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import bayespref as bp
from bayespref.checks.loo import compare


def main() -> None:
    settings = bp.SamplerSettings(chains=2, draws=400, tune=400, seed=4)
    simulation = bp.simulate(
        n_tasks=80,
        n_datasets=2,
        n_comparisons=3000,
        repeats=2,
        position_bias=0.0,
        refusal_rate=0.15,
        refusal_utility_corr=-0.7,
        seed=6,
    )
    truth = np.corrcoef(simulation.truth["mu"], simulation.truth["refusal_logit"])[0, 1]
    params = {
        model: bp.fit(
            simulation.comparisons,
            simulation.tasks,
            model=model,
            settings=settings,
            progressbar=False,
        ).params.set_index("name")
        for model in ("refusal", "hierarchical", "reference-refusals")
    }
    for name in ("refusal_utility_corr_tasks", "refusal_utility_corr"):
        row = params["refusal"].loc[name]
        print(f"{name}: {row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]")
    print(f"true across-task correlation: {truth:.3f}")
    for model in ("hierarchical", "reference-refusals"):
        row = params[model].loc["position_bias"]
        print(f"{model}: position_bias {row['mean']:.3f} [{row['low']:.3f}, {row['high']:.3f}]")

    position = bp.simulate(
        n_tasks=50, n_datasets=2, n_comparisons=2000, repeats=2, position_bias=0.5, seed=3
    )
    root = Path(tempfile.mkdtemp())
    for model in ("thurstone", "position"):
        bp.fit(
            position.comparisons,
            position.tasks,
            model=model,
            out=root / model,
            settings=bp.SamplerSettings(chains=2, draws=300, tune=300, seed=2),
            progressbar=False,
        )
    print(compare([root / "thurstone", root / "position"]).table.to_string(index=False))


if __name__ == "__main__":
    main()
