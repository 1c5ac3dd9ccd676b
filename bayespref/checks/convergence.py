"""Convergence diagnostics: r_hat, ESS, divergences, BFMI and tree depth, with a verdict."""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayespref.checks.rank_diagnostics import rhat_and_bulk_ess
from bayespref.posterior.diagnostics import Diagnostics
from bayespref.posterior.draws import reported_variables

THRESHOLDS = {"r_hat": 1.01, "ess_bulk": 400.0, "bfmi": 0.3}


_BLOCK = 2048  # quantities ranked at a time, which bounds the memory of the ranks and FFTs
_RECHECK_BATCH = 32  # quantities that failed, rechecked at a time between blocks of draws


def _ordered(array: xr.DataArray) -> xr.DataArray:
    other = [dim for dim in array.dims if dim not in ("chain", "draw")]
    return array.transpose("chain", "draw", *other)


def _by_quantity(ordered: xr.DataArray) -> np.ndarray:
    """Draws shaped (chain, draw, quantity), in float64."""
    return ordered.values.reshape(*ordered.shape[:2], -1).astype(np.float64)


def _fails(r_hat: np.ndarray, ess_bulk: np.ndarray) -> np.ndarray:
    """Which quantities fail the thresholds (NaN, as for constants, does not)."""
    return (r_hat > THRESHOLDS["r_hat"]) | (ess_bulk < THRESHOLDS["ess_bulk"])


def failing_quantities(r_hat: xr.Dataset, ess_bulk: xr.Dataset) -> list[tuple[str, int]]:
    """(variable, flat index) of every quantity that fails the thresholds, worst first: by how
    many times its r_hat's excess over 1 or its ESS's shortfall exceeds the threshold's."""
    found, badness = [], []
    for name in r_hat.data_vars:
        values, ess = np.ravel(r_hat[name].values), np.ravel(ess_bulk[name].values)
        fails = _fails(values, ess)
        found += [(name, int(index)) for index in np.flatnonzero(fails)]
        with np.errstate(divide="ignore"):
            excess = (values[fails] - 1) / (THRESHOLDS["r_hat"] - 1)
            badness += list(np.fmax(excess, THRESHOLDS["ess_bulk"] / ess[fails]))
    return [found[i] for i in np.argsort(-np.asarray(badness), kind="stable")]


def any_still_failing(idata, failing: list[tuple[str, int]]) -> bool:
    """Whether any of `failing`'s quantities fails in these draws, computed for them alone and a
    batch at a time, worst first, until one does (r_hat and ESS are per quantity, so the values
    are the full check's): a cheap test between blocks of draws that what failed still fails."""
    posterior = idata["posterior"]
    for start in range(0, len(failing), _RECHECK_BATCH):
        batch = failing[start : start + _RECHECK_BATCH]
        for name in dict.fromkeys(name for name, _ in batch):
            indices = [index for other, index in batch if other == name]
            values = _by_quantity(_ordered(posterior[name]))[:, :, indices]
            if _fails(*rhat_and_bulk_ess(values)).any():
                return True
    return False


def convergence(idata) -> tuple[xr.Dataset, xr.Dataset]:
    """Rank-normalised r_hat and bulk ESS of every reported posterior variable (r_hat NaN for
    constants and single chains), as arviz defines them."""
    posterior = idata["posterior"].to_dataset()
    r_hat, ess_bulk = {}, {}
    for name in reported_variables(posterior):
        ordered = _ordered(posterior[name])
        values = _by_quantity(ordered)
        blocks = [
            rhat_and_bulk_ess(values[:, :, start : start + _BLOCK])
            for start in range(0, values.shape[2], _BLOCK)
        ]
        template = ordered.isel(chain=0, draw=0, drop=True)
        for stats, index in ((r_hat, 0), (ess_bulk, 1)):
            flat = np.concatenate([block[index] for block in blocks])
            stats[name] = template.copy(data=flat.reshape(template.shape))
    return xr.Dataset(r_hat), xr.Dataset(ess_bulk)


def _extreme(stat: xr.Dataset, pick) -> tuple[float, str]:
    best_value, best_name = np.nan, ""
    for name, values in stat.data_vars.items():
        array = np.asarray(values.values, dtype=float)
        if np.all(np.isnan(array)):
            continue
        value = float(pick(array[~np.isnan(array)]))
        if np.isnan(best_value) or pick([value, best_value]) == value:
            best_value, best_name = value, name
    return best_value, best_name


def energy_bfmi(energy: np.ndarray) -> np.ndarray:
    """Bayesian fraction of missing information per chain, from energy shaped (chain, draw)."""
    return np.mean(np.diff(energy, axis=1) ** 2, axis=1) / np.var(energy, axis=1)


def diagnose(idata, r_hat: xr.Dataset, ess_bulk: xr.Dataset) -> Diagnostics:
    """The NUTS measures, with `passed` and the reasons a fit fails the thresholds."""
    stats = idata["sample_stats"]
    max_r_hat, worst_r_hat = _extreme(r_hat, np.max)
    min_ess, worst_ess = _extreme(ess_bulk, np.min)
    divergences = int(stats["diverging"].values.sum())
    bfmi = energy_bfmi(stats["energy"].values)
    tree_depth = stats["tree_depth"].values if "tree_depth" in stats else None
    reasons = []
    if max_r_hat > THRESHOLDS["r_hat"]:
        reasons.append(f"max r_hat {max_r_hat:.3f} > {THRESHOLDS['r_hat']} ({worst_r_hat})")
    if min_ess < THRESHOLDS["ess_bulk"]:
        reasons.append(f"min ess_bulk {min_ess:.0f} < {THRESHOLDS['ess_bulk']:.0f} ({worst_ess})")
    if divergences:
        reasons.append(f"{divergences} divergent transitions")
    if np.min(bfmi) < THRESHOLDS["bfmi"]:
        reasons.append(f"min BFMI {np.min(bfmi):.2f} < {THRESHOLDS['bfmi']}")
    measures = {
        "max_r_hat": max_r_hat,
        "max_r_hat_parameter": worst_r_hat,
        "min_ess_bulk": min_ess,
        "min_ess_bulk_parameter": worst_ess,
        "divergences": divergences,
        "bfmi": [float(value) for value in bfmi],
        "mean_tree_depth": None if tree_depth is None else float(np.mean(tree_depth)),
        "max_tree_depth": None if tree_depth is None else int(np.max(tree_depth)),
        "thresholds": THRESHOLDS,
    }
    return Diagnostics(passed=not reasons, reasons=reasons, measures=measures)


class TrustCheck:
    """Whether draws pass the r_hat and ESS thresholds; keeps its last r_hat and ESS so that
    the fit does not compute them again for the same draws. While a quantity that failed at the
    last full check still fails, the verdict is known without checking the others (at 780
    quantities the full check grew to 0.85 s a block, benchmarks/conditions.py)."""

    def __init__(self) -> None:
        self.last: tuple[xr.DataTree, xr.Dataset, xr.Dataset] | None = None
        self.failing: list[tuple[str, int]] = []

    def __call__(self, idata: xr.DataTree) -> bool:
        if self.failing and any_still_failing(idata, self.failing):
            return False
        r_hat, ess_bulk = convergence(idata)
        self.last = (idata, r_hat, ess_bulk)
        self.failing = failing_quantities(r_hat, ess_bulk)
        return not self.failing

    def stats(self, idata: xr.DataTree) -> tuple[xr.Dataset, xr.Dataset]:
        if self.last is not None and self.last[0] is idata:
            return self.last[1], self.last[2]
        return convergence(idata)
