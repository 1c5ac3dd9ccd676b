"""`fit`: validate comparisons, sample (NUTS or the Laplace approximation), diagnose, summarise,
check, and write the fit folder."""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from dataclasses import asdict, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayespref.analysis.refusal_rates import read_refusal_counts
from bayespref.analysis.summaries import params_table, utilities_table
from bayespref.checks.convergence import TrustCheck, convergence, diagnose
from bayespref.checks.ppc import posterior_predictive_checks
from bayespref.data.choice_data import ChoiceData, load_choice_data
from bayespref.data.completion_refusals import align_completion_refusals
from bayespref.errors import ApproximationError, DataWarning, FitError
from bayespref.inference import device
from bayespref.inference.log_likelihood import add_log_likelihood
from bayespref.inference.settings import METHODS, SamplerSettings, precision_of
from bayespref.io.locations import listing
from bayespref.model.spec import ModelSpec, resolve_spec
from bayespref.model.structure import PRIORS, model_cells, models_conditions
from bayespref.posterior.diagnostics import DataSummary, Diagnostics
from bayespref.posterior.fit import FIT_FORMAT, LOO_UNIT, Fit, ensure_writable, output_lock

_REFUSAL_NOTES = {
    "excluded": "refusals are counted but kept out of the likelihood",
    "modelled": "refusals are a third outcome with per-task propensities",
    "second-wins": "refusals are counted as wins for the second-shown task (reference method)",
}
APPROX_LABEL = "approx (Laplace)"
_VERSIONED = ("bayespref", "pymc", "pytensor", "numpyro", "jax", "jaxlib", "arviz", "numpy")


def _versions() -> dict[str, str]:
    found = {}
    for package in _VERSIONED:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


# Divergences in a dataset hierarchy most often come from the funnel between a dataset's utility
# spread and its tasks' deviations; which way to go depends on how informed each task is.
_FUNNEL_HINTS = {
    "centered": "divergences with centred task deviations: a weakly informed dataset's spread "
    'can trap a chain near zero; try parameterization = "non-centered" in the model spec',
    "non-centered": "divergences with non-centred task deviations: if every task has many "
    'comparisons, parameterization = "centered" may sample better',
}


def _spread_setup(spec: ModelSpec, data: ChoiceData):
    """The spread the Laplace approximation fixes by empirical Bayes (inference/approx.py)."""
    from bayespref.inference.approx import SpreadSetup

    hierarchical = spec.hierarchy == "dataset"
    return SpreadSetup(
        name="dataset_spread" if hierarchical else "task_spread",
        groups=data.task_dataset_idx if hierarchical else np.zeros(len(data.tasks), dtype=int),
        shape=(len(data.datasets),) if hierarchical else (),
        prior_sd=PRIORS["dataset_spread_sd" if hierarchical else "task_spread_sd"],
        link=spec.link,
    )


def _approximate(model, spec: ModelSpec, data: ChoiceData, cells, settings: SamplerSettings):
    """The Laplace approximation (inference/approx.py): `settings.draws` independent draws in one
    chain."""
    from bayespref.inference.approx import laplace_posterior

    return laplace_posterior(
        model,
        _spread_setup(spec, data),
        cells,
        data.task_dataset_idx,
        settings.draws,
        settings.seed,
    )


def _warm_start(spec: ModelSpec, data: ChoiceData, cells, settings: SamplerSettings):
    """Chains' starts and mass matrix from the Laplace approximation, built in float64 (its
    optimizer needs the digits) whatever the sampler's precision; None, with the reason, where
    the approximation fails."""
    from bayespref.inference.warm_start import laplace_warm_start
    from bayespref.model.builder import build_model
    from bayespref.model.conditions import without_joint_mode

    if reason := without_joint_mode(spec):  # the attempt cost 3-4 s (benchmarks/conditions.py)
        return None, f"warm start not attempted ({reason}); chains started from jittered points"
    with device.floating_point("float64"):
        model = build_model(spec, data)
        try:
            warm = laplace_warm_start(
                model,
                _spread_setup(spec, data),
                cells,
                data.task_dataset_idx,
                settings.chains,
                settings.seed,
            )
        except ApproximationError as error:
            return None, f"warm start failed ({error}); chains started from jittered points"
    return warm, None


def observations_hash(cells: pd.DataFrame) -> str:
    """What a model's likelihood saw: fits are LOO-comparable only when these agree."""
    columns = ["task_a", "task_b", "condition", "n", "k", "r"]
    return hashlib.sha256(cells[columns].to_csv(index=False).encode()).hexdigest()[:16]


def trials_by_condition(cells: pd.DataFrame, n_conditions: int, n_tasks: int) -> np.ndarray:
    """Trials each task was in, per condition, shaped (condition, task)."""
    counts = np.zeros((n_conditions, n_tasks), dtype=np.int64)
    for side in ("a_idx", "b_idx"):
        np.add.at(counts, (cells["condition_idx"].to_numpy(), cells[side].to_numpy()), cells["n"])
    return counts


def _require_modelled_refusals(spec: ModelSpec) -> None:
    if spec.refusal != "modelled":
        raise FitError(
            f"refusal rates of completions (--refusal-rates) need a model with refusal = "
            f"\"modelled\" (e.g. --model refusal); model '{spec.name}' has refusal = "
            f'"{spec.refusal}"'
        )


def with_completion_refusals(
    data: ChoiceData, refusal_rates: str | Path | pd.DataFrame
) -> ChoiceData:
    """`data` with the refusal counts of its tasks' completions (the table `bayespref refusals`
    writes, or a frame with its `task_id`, `n`, `refusals`), for a model with refusals modelled.
    Tasks of the table that were never compared are left out with a DataWarning."""
    counts, source = read_refusal_counts(refusal_rates)
    aligned = align_completion_refusals(counts, data.tasks, source)
    notes = list(data.notes)
    if aligned.left_out:
        notes.append(
            f"{len(aligned.left_out)} tasks in {source} are not in the comparisons and are left "
            f"out of the fit: {listing(list(aligned.left_out))}"
        )
        warnings.warn(notes[-1], DataWarning, stacklevel=2)
    return replace(data, completion_refusals=aligned, notes=notes)


def _attach_metadata(
    idata: xr.DataTree,
    data: ChoiceData,
    spec: ModelSpec,
    settings,
    observations: str,
    method: str,
) -> None:
    idata.attrs.update(
        {
            "bayespref_format": FIT_FORMAT,
            "spec": spec.to_json(),
            "spec_hash": spec.hash,
            "data_hash": data.data_hash,
            "observations_hash": observations,
            "datasets": json.dumps(data.datasets),
            "conditions": json.dumps(data.conditions),
            "seed": settings.seed,
            "sampler": json.dumps(asdict(settings)),
            "method": method,
            "approximate": int(method == "approx"),
            "versions": json.dumps(_versions()),
            "device": device.describe(),
            "loo_unit": LOO_UNIT,
        }
    )
    if data.completion_refusals is not None:
        idata.attrs["completion_refusals_hash"] = data.completion_refusals.hash


def _sample(
    spec: ModelSpec,
    data: ChoiceData,
    cells: pd.DataFrame,
    settings: SamplerSettings,
    method: str,
    progressbar: bool,
    log_likelihood: bool,
) -> tuple[xr.DataTree, Diagnostics, tuple[xr.Dataset, xr.Dataset] | None, dict]:
    """The posterior draws, the method's own diagnostics (without sampler and data), r_hat and
    ESS (NUTS), and what the sampler did with the seconds of each stage."""
    # The model builder and the samplers import PyMC and JAX: imported here, when a fit is made,
    # so that importing bayespref stays quick.
    from bayespref.inference.nuts import prepare_nuts, sample_nuts
    from bayespref.model.builder import build_model

    clock = time.perf_counter()
    record, warm, note, prepared = {}, None, None, None
    precision = precision_of(settings, method)
    with device.floating_point(precision):
        model = build_model(spec, data)
        if method == "nuts":
            prepared = prepare_nuts(model, settings)  # compiles while the warm start runs
    if method == "nuts" and settings.init == "laplace":
        warm, note = _warm_start(spec, data, cells, settings)
    check = TrustCheck()
    with device.floating_point(precision):
        if prepared is not None:
            enough = check if settings.until_trusted else None
            idata, sampled = sample_nuts(prepared, progressbar, warm, enough)
            record = asdict(sampled)
        else:
            try:
                idata, laplace = _approximate(model, spec, data, cells, settings)
            except ApproximationError as error:
                raise FitError(f"the approximate fit failed: {error}") from error
        record["seconds_model_and_sampling"] = time.perf_counter() - clock
        clock = time.perf_counter()
        if log_likelihood:
            add_log_likelihood(idata, model)
        record["seconds_log_likelihood"] = time.perf_counter() - clock
    if method == "approx":
        return idata, laplace.diagnostics(), None, record
    clock = time.perf_counter()
    stats = check.stats(idata)
    diagnostics = diagnose(idata, *stats)
    record["seconds_convergence"] = time.perf_counter() - clock
    if note:
        record["init_note"] = note
    if settings.until_trusted and not record["target_reached"]:
        diagnostics.reasons.append(
            f"the trust thresholds were not reached within max_draws={settings.max_draws}"
        )
    if diagnostics.measures["divergences"] and spec.hierarchy == "dataset":
        diagnostics.reasons.append(_FUNNEL_HINTS[spec.parameterization])
    diagnostics.passed = not diagnostics.reasons
    return idata, diagnostics, stats, record


def _refusal_note(spec: ModelSpec, data: ChoiceData) -> str:
    completions = data.completion_refusals
    if completions is None:
        return _REFUSAL_NOTES[spec.refusal]
    return (
        f"{_REFUSAL_NOTES[spec.refusal]}, also observed through {int(completions.refusals.sum())}"
        f" refusals in {int(completions.n.sum())} completions of {len(completions.n)} tasks "
        f"({completions.source}; own intercept, positive slope)"
    )


def _data_summary(spec: ModelSpec, data: ChoiceData, cells: pd.DataFrame) -> DataSummary:
    notes = list(data.notes)
    if len(data.conditions) > 1 and not models_conditions(spec, data):
        notes.append(
            f"{len(data.conditions)} conditions are pooled: model '{spec.name}' has no "
            "condition term"
        )
    return DataSummary(
        data_hash=data.data_hash,
        n_trials=data.n_trials,
        outcomes=data.outcome_counts,
        n_cells=len(cells),
        refusals=_refusal_note(spec, data),
        n_tasks=len(data.tasks),
        datasets=data.datasets,
        conditions=data.conditions,
        loo_unit=LOO_UNIT,
        notes=notes,
    )


def fit_data(
    data: ChoiceData,
    spec: ModelSpec,
    settings: SamplerSettings | None = None,
    progressbar: bool = True,
    log_likelihood: bool = True,
    method: str = "nuts",
) -> Fit:
    """Sample the posterior of `spec` on prepared data and summarise it.

    `method="approx"` replaces NUTS by the Laplace approximation of inference/approx.py (for data
    too large for NUTS); every output says so. `log_likelihood=False` skips the pointwise
    log-likelihood (cells x draws), which LOO needs but which dominates the file size for large
    data."""
    if method not in METHODS:
        raise FitError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    if method == "approx":
        from bayespref.inference.approx import unsupported

        if reason := unsupported(spec):
            raise FitError(reason)
        if settings is not None and settings.until_trusted:
            raise FitError(
                "until_trusted (--until-trusted) draws NUTS chains to the trust thresholds; "
                "method approx takes independent draws: drop one of them"
            )
    if data.completion_refusals is not None:
        _require_modelled_refusals(spec)
    settings = settings or SamplerSettings()
    started = time.perf_counter()
    cells = model_cells(spec, data)
    idata, diagnostics, stats, record = _sample(
        spec, data, cells, settings, method, progressbar, log_likelihood
    )
    _attach_metadata(idata, data, spec, settings, observations_hash(cells), method)
    sampler = (
        {"method": "nuts", "chain_method": device.chain_method(settings.chains)}
        if method == "nuts"
        else {"method": APPROX_LABEL, "chains": 1}
    )
    diagnostics.sampler = {
        **asdict(settings),
        **sampler,
        "device": device.describe(),
        "precision": precision_of(settings, method),
        **{
            key: round(value, 2) if isinstance(value, float) else value
            for key, value in record.items()
        },
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    diagnostics.data = _data_summary(spec, data, cells)
    n_trials = trials_by_condition(cells, len(data.conditions), len(data.tasks))
    if not models_conditions(spec, data):
        n_trials = n_trials.sum(axis=0)
    posterior = idata["posterior"].to_dataset()
    r_hat, ess_bulk = stats if stats is not None else convergence(idata)
    result = Fit(
        idata=idata,
        spec=spec,
        tasks=data.tasks,
        datasets=data.datasets,
        conditions=data.conditions,
        utilities=utilities_table(posterior, data.tasks, n_trials),
        params=params_table(posterior, r_hat, ess_bulk),
        diagnostics=diagnostics,
        task_counts=data.task_counts,
    )
    if method == "approx":  # a trailing column, so that no table can be mistaken for NUTS
        result.utilities["method"] = APPROX_LABEL
        result.params["method"] = APPROX_LABEL
    # The checks replicate data from the finished fit, so they join it last.
    return replace(result, ppc=posterior_predictive_checks(result, cells, seed=settings.seed))


def fit(
    comparisons: str | Path | pd.DataFrame,
    tasks: str | Path | pd.DataFrame | None = None,
    model: str | Path | ModelSpec | None = None,
    settings: SamplerSettings | None = None,
    out: str | Path | None = None,
    force: bool = False,
    progressbar: bool = True,
    log_likelihood: bool = True,
    method: str = "nuts",
    pool: bool = False,
    refusal_rates: str | Path | pd.DataFrame | None = None,
) -> Fit:
    """Validate comparisons, fit the model (NUTS, or `method="approx"`), and write the fit
    folder if `out`. Several protocols, templates or models within one condition are an error
    unless `pool`. `refusal_rates` (the per-task table of `bayespref refusals`) adds the
    refusals among the tasks' completions to a model with refusals modelled."""
    spec = resolve_spec(model)
    if refusal_rates is not None:
        _require_modelled_refusals(spec)

    def load() -> ChoiceData:
        data = load_choice_data(comparisons, tasks, pool)
        return data if refusal_rates is None else with_completion_refusals(data, refusal_rates)

    if out is None:
        return fit_data(load(), spec, settings, progressbar, log_likelihood, method)
    out = Path(out)
    with output_lock(out):
        ensure_writable(out, force)
        result = fit_data(load(), spec, settings, progressbar, log_likelihood, method)
        result.write_locked(out, force)
    return result
