"""Sampling a model with NumPyro NUTS, and saving and loading fit folders."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayespref import device
from bayespref.data import ChoiceData, load_choice_data, write_table
from bayespref.diagnostics import convergence, diagnose
from bayespref.locking import FolderLock
from bayespref.spec import ModelSpec, resolve_spec
from bayespref.summaries import params_table, utilities_table

FIT_FORMAT = 1
FIT_FILES = (
    "posterior.nc",
    "utilities.csv",
    "params.csv",
    "diagnostics.json",
    "task_counts.csv",
    "ppc.csv",
)
LOO_UNIT = (
    "cell: all trials of one ordered pair (task_a, task_b) in one condition, as binomial counts"
)
_REFUSAL_NOTES = {
    "excluded": "refusals are counted but kept out of the likelihood",
    "modelled": "refusals are a third outcome with per-task propensities",
    "second-wins": "refusals are counted as wins for the second-shown task (reference method)",
}
_ID_COLUMNS = {"task_id": str, "dataset": str, "condition": str}
METHODS = ("nuts", "approx")
APPROX_LABEL = "approx (Laplace)"
# Draws per block when computing the pointwise log-likelihood: bounds its float64 working memory.
_LOG_LIKELIHOOD_DRAWS = 100
_VERSIONED = ("bayespref", "pymc", "pytensor", "numpyro", "jax", "jaxlib", "arviz", "numpy")


class FitError(RuntimeError):
    """A fit that cannot be made, saved or loaded as asked."""


@dataclass(frozen=True)
class SamplerSettings:
    chains: int = 4
    draws: int = 1000
    tune: int = 1000
    target_accept: float = 0.9
    seed: int = 0
    precision: str = "auto"  # float32 for NUTS, float64 for the approximation (_precision)

    def __post_init__(self) -> None:
        if self.chains < 1 or self.draws < 1 or self.tune < 0:
            raise FitError("chains and draws must be positive and tune non-negative")
        if not 0 < self.target_accept < 1:
            raise FitError("target_accept must be between 0 and 1")
        if self.precision not in device.PRECISIONS:
            known = ", ".join(device.PRECISIONS)
            raise FitError(f"unknown precision '{self.precision}'; choose one of {known}")


@dataclass
class Fit:
    """A posterior with its tables; `save` writes the fit folder of DESIGN.md."""

    idata: xr.DataTree
    spec: ModelSpec
    tasks: pd.DataFrame  # task_id, dataset, dataset_idx in model order
    datasets: list[str]
    conditions: list[str]  # the reference condition first
    utilities: pd.DataFrame
    params: pd.DataFrame
    diagnostics: dict
    task_counts: pd.DataFrame
    ppc: pd.DataFrame | None = None  # posterior predictive checks (ppc.py)

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    def save(self, out: str | Path, force: bool = False) -> Path:
        """Write the fit folder atomically: a killed save never leaves a complete-looking folder,
        and a second process writing the same folder is refused."""
        out = Path(out)
        with output_lock(out):
            return self._write(out, force)

    def _write(self, out: Path, force: bool) -> Path:
        ensure_writable(out, force)
        # Under the output lock, any partial folder was left by a process killed mid-save.
        for leftover in out.parent.glob(f".{glob.escape(out.name)}.partial-*"):
            shutil.rmtree(leftover)
        partial = out.parent / f".{out.name}.partial-{os.getpid()}"
        partial.mkdir(parents=True)
        self.idata.to_netcdf(partial / "posterior.nc", engine="h5netcdf")
        write_table(self.utilities, partial / "utilities.csv")
        write_table(self.params, partial / "params.csv")
        write_table(self.task_counts, partial / "task_counts.csv")
        write_table(self.ppc, partial / "ppc.csv")
        (partial / "diagnostics.json").write_text(json.dumps(self.diagnostics, indent=2) + "\n")
        if out.exists():
            replaced = out.parent / f".{out.name}.replaced-{os.getpid()}"
            out.rename(replaced)
            partial.rename(out)
            shutil.rmtree(replaced)
        else:
            partial.rename(out)
        return out


def output_lock(out: Path) -> FolderLock:
    out.parent.mkdir(parents=True, exist_ok=True)
    return FolderLock(out.parent / f".{out.name}.lock", str(out), FitError)


def ensure_writable(out: str | Path, force: bool) -> None:
    out = Path(out)
    if out.exists() and not force:
        raise FitError(f"output folder '{out}' already exists; choose another or pass --force")
    if out.exists() and not out.is_dir():
        raise FitError(f"output path '{out}' exists and is not a folder")


def _versions() -> dict[str, str]:
    found = {}
    for package in _VERSIONED:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


def add_log_likelihood(idata: xr.DataTree, model) -> None:
    """Store the pointwise log-likelihood as float32, computed a block of draws at a time so that
    only the float32 result grows with the data (4 x 1000 draws x 332,000 cells in float64
    at once would be 10 GB). LOO needs no more precision than float32."""
    import pymc as pm

    posterior = idata["posterior"].to_dataset()
    blocks = []
    for start in range(0, posterior.sizes["draw"], _LOG_LIKELIHOOD_DRAWS):
        block = posterior.isel(draw=slice(start, start + _LOG_LIKELIHOOD_DRAWS))
        computed = pm.compute_log_likelihood(
            xr.DataTree.from_dict({"posterior": block}),
            model=model,
            extend_inferencedata=False,
            progressbar=False,
        )
        blocks.append(computed.astype(np.float32))
    idata["log_likelihood"] = xr.concat(blocks, dim="draw")


# Divergences in a dataset hierarchy most often come from the funnel between a dataset's utility
# spread and its tasks' deviations; which way to go depends on how informed each task is.
_FUNNEL_HINTS = {
    "centered": "divergences with centred task deviations: a weakly informed dataset's spread "
    'can trap a chain near zero; try parameterization = "non-centered" in the model spec',
    "non-centered": "divergences with non-centred task deviations: if every task has many "
    'comparisons, parameterization = "centered" may sample better',
}


def _jittered_starts(model, chains: int, seed: int) -> list[dict]:
    """PyMC's starting points, one per chain: the initial point plus U(-1, 1) jitter in the
    sampler's coordinates, keyed by value variable. PyMC's NumPyro path would also check each
    point's log density, evaluated op by op (3 s at any size); every model of model.py has a
    finite density at every finite point, so the check is skipped."""
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_fns_per_chain

    functions = make_initial_point_fns_per_chain(
        model=model, overrides=None, jitter_rvs=set(model.free_RVs), chains=chains
    )
    seeds = np.random.default_rng(seed).integers(2**30, size=chains)
    # As tensors: PyMC maps them back through the transforms symbolically (its zero-sum
    # transform fails on NumPy arrays).
    return [
        {name: pt.as_tensor_variable(value) for name, value in function(int(s)).items()}
        for function, s in zip(functions, seeds, strict=True)
    ]


def _sample(model, settings: SamplerSettings, progressbar: bool) -> xr.DataTree:
    # PyMC's JAX entry point itself: pm.sample would first assign PyMC's own step methods (1 s).
    from pymc.sampling.jax import sample_jax_nuts

    return sample_jax_nuts(
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        target_accept=settings.target_accept,
        random_seed=settings.seed,
        initvals=_jittered_starts(model, settings.chains, settings.seed),
        jitter=False,
        model=model,
        progressbar=progressbar,
        chain_method=device.chain_method(settings.chains),
        compute_convergence_checks=False,
        nuts_sampler="numpyro",
    )


def _precision(settings: SamplerSettings, method: str) -> str:
    """The arithmetic of the fit. NUTS runs in float32 unless asked otherwise, on CPU as on an
    accelerator: it gives the float64 posterior 1.4 to 2.6 times faster (benchmarks/precision.py,
    every model term but the logit link checked). The Laplace approximation stays in float64: its
    optimizer and Cholesky factor need the digits."""
    if method == "nuts":
        return "float32" if settings.precision == "auto" else settings.precision
    if settings.precision == "float32":
        raise FitError("--method approx runs in float64 only; drop precision float32")
    return "float64"


def _approximate(model, spec: ModelSpec, data: ChoiceData, cells, settings: SamplerSettings):
    """The Laplace approximation (approx.py): `settings.draws` independent draws in one chain."""
    from bayespref.approx import SpreadSetup, laplace_posterior
    from bayespref.model import PRIORS

    hierarchical = spec.hierarchy == "dataset"
    setup = SpreadSetup(
        name="dataset_spread" if hierarchical else "task_spread",
        groups=data.task_dataset_idx if hierarchical else np.zeros(len(data.tasks), dtype=int),
        shape=(len(data.datasets),) if hierarchical else (),
        prior_sd=PRIORS["dataset_spread_sd" if hierarchical else "task_spread_sd"],
        link=spec.link,
    )
    return laplace_posterior(
        model, setup, cells, data.task_dataset_idx, settings.draws, settings.seed
    )


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


def fit_data(
    data: ChoiceData,
    spec: ModelSpec,
    settings: SamplerSettings | None = None,
    progressbar: bool = True,
    log_likelihood: bool = True,
    method: str = "nuts",
) -> Fit:
    """Sample the posterior of `spec` on prepared data and summarise it.

    `method="approx"` replaces NUTS by the Laplace approximation of approx.py (for data too large
    for NUTS); every output says so. `log_likelihood=False` skips the pointwise log-likelihood
    (cells x draws), which LOO needs but which dominates the file size for large data."""
    from bayespref.model import build_model, model_cells, models_conditions
    from bayespref.ppc import posterior_predictive_checks

    if method not in METHODS:
        raise FitError(f"unknown method '{method}'; choose one of {', '.join(METHODS)}")
    settings = settings or SamplerSettings()
    precision = _precision(settings, method)
    started = time.perf_counter()
    cells = model_cells(spec, data)
    with device.floating_point(precision):
        model = build_model(spec, data)
        if method == "nuts":
            idata = _sample(model, settings, progressbar)
        else:
            from bayespref.approx import ApproximationError

            try:
                idata, laplace = _approximate(model, spec, data, cells, settings)
            except ApproximationError as error:
                raise FitError(f"the approximate fit failed: {error}") from error
        if log_likelihood:
            add_log_likelihood(idata, model)
    _attach_metadata(idata, data, spec, settings, observations_hash(cells), method)
    posterior = idata["posterior"].to_dataset()
    r_hat, ess_bulk = convergence(idata)
    if method == "nuts":
        diagnostics = diagnose(idata, r_hat, ess_bulk)
        if diagnostics["divergences"] and spec.hierarchy == "dataset":
            diagnostics["reasons"].append(_FUNNEL_HINTS[spec.parameterization])
        sampler = {"method": "nuts", "chain_method": device.chain_method(settings.chains)}
    else:
        diagnostics = laplace.diagnostics()
        sampler = {"method": APPROX_LABEL, "chains": 1}
    diagnostics["sampler"] = {
        **asdict(settings),
        **sampler,
        "device": device.describe(),
        "precision": precision,
        "wall_seconds": round(time.perf_counter() - started, 2),
    }
    notes = list(data.notes)
    by_condition = models_conditions(spec, data)
    if len(data.conditions) > 1 and not by_condition:
        notes.append(
            f"{len(data.conditions)} conditions are pooled: model '{spec.name}' has no "
            "condition term"
        )
    diagnostics["data"] = {
        "data_hash": data.data_hash,
        "n_trials": data.n_trials,
        "outcomes": data.outcome_counts,
        "n_cells": len(cells),
        "refusals": _REFUSAL_NOTES[spec.refusal],
        "n_tasks": len(data.tasks),
        "datasets": data.datasets,
        "conditions": data.conditions,
        "loo_unit": LOO_UNIT,
        "notes": notes,
    }
    n_trials = trials_by_condition(cells, len(data.conditions), len(data.tasks))
    if not by_condition:
        n_trials = n_trials.sum(axis=0)
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
    result.ppc = posterior_predictive_checks(result, cells, seed=settings.seed)
    return result


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
) -> Fit:
    """Validate comparisons, fit the model (NUTS, or `method="approx"`), and write the fit
    folder if `out`."""
    spec = resolve_spec(model)
    if out is None:
        data = load_choice_data(comparisons, tasks)
        return fit_data(data, spec, settings, progressbar, log_likelihood, method)
    out = Path(out)
    with output_lock(out):
        ensure_writable(out, force)
        data = load_choice_data(comparisons, tasks)
        result = fit_data(data, spec, settings, progressbar, log_likelihood, method)
        result._write(out, force)
    return result


def load_fit(path: str | Path) -> Fit:
    """Load a fit folder, checking that it is complete and that its spec matches its hash."""
    path = Path(path)
    missing = [name for name in FIT_FILES if not (path / name).exists()]
    if missing:
        raise FitError(f"'{path}' is not a complete fit folder (missing {', '.join(missing)})")
    with xr.open_datatree(path / "posterior.nc", engine="h5netcdf") as stored:
        idata = stored.load()
    attrs = idata.attrs
    if attrs.get("bayespref_format") != FIT_FORMAT:
        raise FitError(
            f"'{path}' was written in fit format {attrs.get('bayespref_format')}; this version "
            f"reads format {FIT_FORMAT}: refit with this version"
        )
    spec = ModelSpec.from_dict(json.loads(attrs["spec"]), f"{path}/posterior.nc")
    if spec.hash != attrs["spec_hash"]:
        raise FitError(
            f"'{path}': the stored spec hashes to {spec.hash}, not {attrs['spec_hash']}; "
            "the fit folder was altered"
        )
    datasets = json.loads(attrs["datasets"])
    dataset_idx = np.asarray(idata["constant_data"]["task_dataset_idx"].values, dtype=np.int64)
    tasks = pd.DataFrame(
        {
            "task_id": idata["posterior"]["task"].values.astype(str),
            "dataset": np.asarray(datasets, dtype=object)[dataset_idx],
            "dataset_idx": dataset_idx,
        }
    )
    return Fit(
        idata=idata,
        spec=spec,
        tasks=tasks,
        datasets=datasets,
        conditions=json.loads(attrs["conditions"]),
        utilities=pd.read_csv(path / "utilities.csv", dtype=_ID_COLUMNS, keep_default_na=False),
        params=pd.read_csv(path / "params.csv", keep_default_na=False),
        diagnostics=json.loads((path / "diagnostics.json").read_text()),
        task_counts=pd.read_csv(path / "task_counts.csv", dtype=_ID_COLUMNS, keep_default_na=False),
        ppc=pd.read_csv(path / "ppc.csv"),
    )
