"""Zero sums within datasets: the vectors (dataset means, task deviations, log offsets) whose
sums are fixed so that the model's location and scale units are identified without a reference
task, with one free coordinate per task but each dataset's dependent one."""

from __future__ import annotations

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

from bayespref.data.choice_data import ChoiceData


def zero_sum_or_zero(name: str, sigma: float, n_datasets: int) -> pt.TensorVariable:
    """A zero-sum vector over datasets; with one dataset it is the constant 0."""
    if n_datasets > 1:
        return pm.ZeroSumNormal(name, sigma=sigma, dims="dataset")
    return pm.Deterministic(name, pt.zeros(1), dims="dataset")


def dependent_of_group(group: np.ndarray, anchoring: np.ndarray) -> np.ndarray:
    """True for one task per group, the one whose value the zero sum sets: the best anchored
    (the largest `anchoring`, the first in task order on ties). The dependent task moves only
    when all its group's free coordinates move together, so a task the data bound on one side
    only (never beaten, say) mixed slowly there: r_hat 1.017, ess_bulk 184 on the real set, its
    never-beaten peers elsewhere 1,800. The prior is exchangeable, so the choice is no model
    change."""
    dependent = np.full(len(group), False)
    for g in np.unique(group):
        members = np.flatnonzero(group == g)
        dependent[members[np.argmax(anchoring[members])]] = True
    return dependent


def anchoring(data: ChoiceData) -> np.ndarray:
    """Per task (model order), how firmly choices pin its utility from both sides: the count
    of its rarer outcome, min(wins, losses)."""
    counts = data.task_counts.set_index("task_id").loc[data.tasks["task_id"]]
    return np.minimum(counts["n_wins"], counts["n_losses"]).to_numpy()


def zero_sum_within(
    free: pt.TensorVariable, group: np.ndarray, dependent: np.ndarray, n_groups: int
) -> pt.TensorVariable:
    """Map free coordinates (every task but its group's dependent one, in task order, along the
    last axis) to a vector that sums to zero within each group: PyMC's ZeroSumNormal
    reflection, applied per group. It is an isometry, so iid normal free coordinates give iid
    normals conditioned on zero group sums, and no direction is left that only the prior sees.

    Group sums are products with one-hot matrices and the dependent values are put in place by
    one permutation: written with increments and assignments at indices, the map cost about a
    fifth of a gradient of benchmarks/conditions.py's model (13 rows of 60 tasks), as XLA's CPU
    backend runs scatters element by element."""
    dtype = pytensor.config.floatX
    size = np.sqrt(np.maximum(np.bincount(group, minlength=n_groups), 1)).astype(dtype)
    member = np.eye(n_groups, dtype=dtype)[group]  # (task, group)
    sums = pt.dot(free, member[~dependent])
    norm = sums / (size + size**2)
    fill = pt.dot(norm - sums / size, member[dependent].T)  # the dependent tasks' values
    # Task t's place in [free..., fill...].
    place = np.empty(len(group), dtype=np.int64)
    place[~dependent] = np.arange(np.count_nonzero(~dependent))
    place[dependent] = np.count_nonzero(~dependent) + np.arange(np.count_nonzero(dependent))
    values = pt.concatenate([free, fill], axis=-1)[..., place]
    return values - pt.dot(norm, member.T)


def free_tasks(data: ChoiceData) -> tuple[np.ndarray, np.ndarray]:
    """Each task's dataset and whether it is its dataset's dependent (zero-sum) task; adds the
    `free_task` coord (every task but the dependent ones) to the model in context."""
    group = data.task_dataset_idx
    dependent = dependent_of_group(group, anchoring(data))
    model = pm.modelcontext(None)
    if "free_task" not in model.coords:
        model.add_coord("free_task", data.tasks["task_id"].to_numpy()[~dependent])
    return group, dependent
