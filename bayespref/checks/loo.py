"""PSIS-LOO comparison of fits made on the same data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd
import xarray as xr

from bayespref.errors import FitError
from bayespref.posterior.fit import Fit, load_fit

COMPARE_COLUMNS = ["model", "rank", "elpd_loo", "se", "elpd_diff", "dse", "p_loo", "weight"]
PARETO_K_BAD = 0.7


@dataclass(frozen=True)
class Comparison:
    table: pd.DataFrame  # COMPARE_COLUMNS plus pareto_k_bad, pareto_k_very_bad
    worst: pd.DataFrame  # per fit, the observations with the largest Pareto k
    loo_unit: str


def _names(paths: list[Path]) -> list[str]:
    names = [path.name or str(path) for path in paths]
    if len(set(names)) < len(names):
        names = [str(path) for path in paths]
    return names


def _summed_log_likelihood(fit: Fit):
    """One pointwise log-likelihood per cell: a cell's choices and refusals together."""
    group = fit.idata["log_likelihood"].to_dataset()
    if len(group.data_vars) == 1:
        return fit.idata
    tree = fit.idata.copy()
    total = sum(group[name] for name in group.data_vars)
    tree["log_likelihood"] = total.rename("cell_trials").to_dataset()
    return tree


def loo(tree: xr.DataTree):
    """PSIS-LOO of one fit's cells. A cell whose log-likelihood is the same in every draw (near
    certain: its probability rounds to 1) is left out without changing the posterior: uniform
    weights, Pareto k 0. PSIS's tail fit has nothing to fit there and raised 'All tail values are
    the same' (12 of 2,997 cells of a fit to the real development set)."""
    log_lik = next(iter(tree["log_likelihood"].to_dataset().data_vars.values()))
    sample = ("chain", "draw")
    constant = log_lik.max(sample) == log_lik.min(sample)
    if not constant.any() or constant.all():
        return az.loo(tree, pointwise=True)
    n_draws = log_lik.sizes["chain"] * log_lik.sizes["draw"]
    ess = tree["posterior"].to_dataset().azstats.ess(method="mean")
    reff = np.hstack([ess[name].values.ravel() for name in ess.data_vars]).mean() / n_draws
    cell = log_lik.dims[-1]
    stand_in = log_lik.where(~constant, log_lik.isel({cell: int(np.argmin(constant.values))}))
    log_weights, pareto_k = stand_in.azstats.psislw(r_eff=reff, dim=sample)
    return az.loo(
        tree,
        pointwise=True,
        reff=reff,
        log_weights=log_weights.where(~constant, -np.log(n_draws)),
        pareto_k=pareto_k.where(~constant, 0.0),
    )


def compare(fits: list[str | Path], worst: int = 5) -> Comparison:
    """LOO table of several fits; refuses fits of different data or without log-likelihood."""
    paths = [Path(path) for path in fits]
    if len(paths) < 2:
        raise FitError("compare needs at least two fit folders")
    seen: dict[Path, Path] = {}
    for path in paths:
        same = seen.setdefault(path.resolve(), path)
        if same is not path:
            raise FitError(f"'{same}' and '{path}' are the same fit folder; compare different fits")
    loaded = [load_fit(path) for path in paths]
    for key, what in (
        ("data_hash", "were made on different data"),
        ("observations_hash", "read the same data differently (e.g. refusals modelled in one)"),
    ):
        if len({fit.idata.attrs[key] for fit in loaded}) > 1:
            listed = ", ".join(
                f"{path} ({fit.idata.attrs[key]})" for path, fit in zip(paths, loaded, strict=True)
            )
            raise FitError(f"the fits {what} and cannot be compared by LOO: {listed}")
    for path, fit in zip(paths, loaded, strict=True):
        if "log_likelihood" not in fit.idata.children:
            raise FitError(f"'{path}' has no log_likelihood; refit it without --no-log-likelihood")
    names = _names(paths)
    loos, worst_rows = {}, []
    for name, fit in zip(names, loaded, strict=True):
        result = loo(_summed_log_likelihood(fit))
        loos[name] = result
        k = np.asarray(result.pareto_k).ravel()
        order = np.argsort(k)[::-1][:worst]
        labels = fit.cells.loc[order, ["task_a", "task_b"]].reset_index(names="cell")
        labels = labels.assign(model=name, pareto_k=k[order])
        worst_rows.append(labels[labels["pareto_k"] > PARETO_K_BAD])
    table = az.compare(loos, round_to="none").rename(columns={"elpd": "elpd_loo", "p": "p_loo"})
    table = table.rename_axis("model").reset_index()[COMPARE_COLUMNS]
    counts = {
        name: (
            int(np.sum(np.asarray(entry.pareto_k) > PARETO_K_BAD)),
            int(np.sum(np.asarray(entry.pareto_k) > 1)),
        )
        for name, entry in loos.items()
    }
    table["pareto_k_bad"] = table["model"].map(lambda name: counts[name][0])
    table["pareto_k_very_bad"] = table["model"].map(lambda name: counts[name][1])
    worst_table = pd.concat(worst_rows, ignore_index=True) if worst_rows else pd.DataFrame()
    return Comparison(table, worst_table, str(loaded[0].idata.attrs["loo_unit"]))
