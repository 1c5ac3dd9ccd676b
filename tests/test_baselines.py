from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import check_grad

import bayespref as bp
from bayespref.analysis.baselines import fit_reference, penalized_objective, reference_cells


def test_reference_mle_recovers_order_and_counts_refusals_as_second_wins():
    simulation = bp.simulate(
        n_tasks=60, n_datasets=1, n_comparisons=1700, position_bias=0.0, seed=0
    )
    reference = fit_reference(simulation.comparisons)
    assert reference.converged
    truth = simulation.truth.set_index("task_id").loc[reference.task_ids, "mu"]
    assert np.corrcoef(reference.mu, truth)[0, 1] > 0.9
    assert reference.mu[0] == 0.0

    refused = pd.DataFrame({"task_a": ["x"] * 20, "task_b": ["y"] * 20, "choice": ["refusal"] * 20})
    mixed = pd.concat([refused, pd.DataFrame({"task_a": ["y"], "task_b": ["x"], "choice": ["a"]})])
    fitted = fit_reference(mixed)
    p = fitted.p_first(pd.Series(["x"]), pd.Series(["y"]))
    assert p[0] < 0.1  # 20 refusals read as wins for y, the second-shown task


def test_reference_gradient_is_exact():
    comparisons = bp.simulate(n_tasks=8, n_comparisons=28, seed=1).comparisons
    task_ids = np.sort(pd.unique(pd.concat([comparisons["task_a"], comparisons["task_b"]])))
    cells = reference_cells(comparisons, pd.Series(np.arange(8), index=task_ids))
    x = np.random.default_rng(0).normal(0, 0.5, 15)
    error = check_grad(
        lambda t: penalized_objective(t, cells, 8, 1.0)[0],
        lambda t: penalized_objective(t, cells, 8, 1.0)[1],
        x,
    )
    assert error < 1e-5
