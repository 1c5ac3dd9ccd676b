"""PSIS-LOO comparison of fits made on the same data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import arviz as az
import numpy as np
import pandas as pd

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
        loo = az.loo(_summed_log_likelihood(fit), pointwise=True)
        loos[name] = loo
        k = np.asarray(loo.pareto_k).ravel()
        order = np.argsort(k)[::-1][:worst]
        labels = fit.cells.loc[order, ["task_a", "task_b"]].reset_index(names="cell")
        labels = labels.assign(model=name, pareto_k=k[order])
        worst_rows.append(labels[labels["pareto_k"] > PARETO_K_BAD])
    table = az.compare(loos, round_to="none").rename(columns={"elpd": "elpd_loo", "p": "p_loo"})
    table = table.rename_axis("model").reset_index()[COMPARE_COLUMNS]
    counts = {
        name: (
            int(np.sum(np.asarray(loo.pareto_k) > PARETO_K_BAD)),
            int(np.sum(np.asarray(loo.pareto_k) > 1)),
        )
        for name, loo in loos.items()
    }
    table["pareto_k_bad"] = table["model"].map(lambda name: counts[name][0])
    table["pareto_k_very_bad"] = table["model"].map(lambda name: counts[name][1])
    worst_table = pd.concat(worst_rows, ignore_index=True) if worst_rows else pd.DataFrame()
    return Comparison(table, worst_table, str(loaded[0].idata.attrs["loo_unit"]))
