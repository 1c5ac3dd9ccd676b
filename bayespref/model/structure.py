"""What a spec means for given data, without building the PyMC model: the priors' constants,
the cells the likelihood sees, and which terms apply."""

from __future__ import annotations

import pandas as pd

from bayespref.data.choice_data import ChoiceData
from bayespref.model.spec import ModelSpec

# Utilities are in units of the noise sigma. Real choices are often nearly deterministic, so
# spreads of 5-10 sigma occur: the scales below leave room for that.
PRIORS = {
    "dataset_mean_sd": 5.0,
    "dataset_spread_sd": 5.0,
    "task_spread_sd": 5.0,  # utility spread without a dataset hierarchy
    "log_sigma_dataset_sd": 0.5,
    "sigma_spread_sd": 0.5,
    "position_sd": 1.0,
    "position_spread_sd": 0.25,
    "position_pair_spread_sd": 0.25,
    "condition_dataset_spread_sd": 1.0,
    "condition_task_spread_sd": 0.5,
    "refusal_mean_mu": -4.0,  # logit of a typical refusal rate of about 2%
    "refusal_mean_sd": 2.0,
    "refusal_spread_sd": 2.0,
    # Completion refusals: logit = intercept + slope * (propensity - refusal_mean_mu). The
    # intercept is centred where choice trials are (no prior claim that either protocol refuses
    # more); +-2 sd spans completion rates of 0.01% to 73%. The slope's LogNormal(0, 1) centres
    # on equal logit scales and gives 94% to ratios of 0.15 to 6.6 either way.
    "completion_refusal_intercept_sd": 2.5,
    "completion_refusal_log_slope_sd": 1.0,
    "lapse_beta": (1.0, 19.0),
    # Per-task lapse: logit of a dataset's typical rate (about 5%, 0.3% to 45% within 2 sd) and
    # the spread of tasks around it.
    "lapse_logit_mu": -3.0,
    "lapse_logit_sd": 1.5,
    "lapse_spread_sd": 1.0,
    "pair_sd": 5.0,  # a pair's effect shared by its repeats, in noise units (as spreads)
    "pair_sd_spread_sd": 0.5,  # spread of log pair-effect sd between tasks of a dataset
    # Beta-binomial cells: log concentration per dataset; 94% of the prior between kappa 0.15
    # (repeats nearly always unanimous) and 50 (nearly binomial), centred at 2.7.
    "log_concentration_mu": 1.0,
    "log_concentration_sd": 1.5,
    "concentration_spread_sd": 0.5,  # spread of log concentration between tasks of a dataset
}


def completion_refusal_logit(intercept, slope, propensity):
    """Logit of refusing a completion, from a task's refusal propensity in choice trials (numbers
    or tensors). The propensity is measured from PRIORS["refusal_mean_mu"], the prior centre of
    its dataset means, so that the intercept is the completion logit of a typical task and moves
    little when the slope does."""
    return intercept + slope * (propensity - PRIORS["refusal_mean_mu"])


def position_scope(spec: ModelSpec, n_datasets: int) -> str:
    """How the model's position term is indexed (model/dataset_pairs.py: position_offset; for
    predictions, model/choice.py: first_choice_z)."""
    if n_datasets == 1 or spec.position in ("none", "global"):
        return "global"
    return "pair" if spec.position == "per-dataset-pair" else "dataset"


def models_conditions(spec: ModelSpec, data: ChoiceData) -> bool:
    return spec.conditions == "shifts" and len(data.conditions) > 1


def model_cells(spec: ModelSpec, data: ChoiceData) -> pd.DataFrame:
    """The cells a spec's likelihood sees. With refusals 'second-wins' (the reference method's
    reading, kept to reproduce old results) a refusal counts as a win for the second task."""
    cells = data.cells
    if spec.refusal == "second-wins":
        return cells.assign(n=cells["n"] + cells["r"], r=0)
    if spec.refusal == "excluded":
        return cells[cells["n"] > 0].reset_index(drop=True)
    return cells
