"""A fit: the posterior as an ArviZ DataTree with its tables and diagnostics, and its folder.

A fit folder holds posterior.nc (the DataTree; its attributes carry the spec, the hashes, the
seed, the sampler settings, versions and device), utilities.csv, params.csv, diagnostics.json,
task_counts.csv and ppc.csv (docs/architecture.md, "Fit folder"). Saving is atomic: a killed save
never leaves a complete-looking folder, and a second process writing the same folder is refused.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayespref.errors import FitError
from bayespref.io.atomic import make_folder, write_atomically
from bayespref.io.locations import listing
from bayespref.io.locking import FolderLock
from bayespref.io.tables import require_columns, write_table
from bayespref.model.spec import ModelSpec
from bayespref.posterior.diagnostics import Diagnostics

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
_ID_COLUMNS = {"task_id": str, "dataset": str, "condition": str}
# The columns of each table that readers of a fit rely on.
_TABLE_COLUMNS = {
    "utilities.csv": ("task_id", "dataset", "mu_mean", "mu_low", "mu_high", "sigma_mean"),
    "params.csv": ("name", "mean", "low", "high"),
    "task_counts.csv": ("task_id", "n_trials", "n_refusal"),
    "ppc.csv": ("statistic", "observed", "replicated_low", "replicated_high", "outside"),
}


@dataclass
class Fit:
    """A posterior with its tables; `save` writes the fit folder."""

    idata: xr.DataTree
    spec: ModelSpec
    tasks: pd.DataFrame  # task_id, dataset, dataset_idx in model order
    datasets: list[str]
    conditions: list[str]  # the reference condition first
    utilities: pd.DataFrame
    params: pd.DataFrame
    diagnostics: Diagnostics
    task_counts: pd.DataFrame
    ppc: pd.DataFrame | None = None  # posterior predictive checks (checks/ppc.py)

    @property
    def posterior(self) -> xr.Dataset:
        return self.idata["posterior"].to_dataset()

    @property
    def cells(self) -> pd.DataFrame:
        """The cells the likelihood saw, one row per cell in model order: `a_idx`, `b_idx`,
        `task_a`, `task_b`, `dataset_a`, `dataset_b`, `n` choice trials, `k` won by the
        first-shown task and `condition_idx` (0 throughout when conditions are pooled)."""
        constant = self.idata["constant_data"]
        a_idx = np.asarray(constant["task_a_idx"].values, dtype=np.int64)
        condition = constant["condition_idx"].values if "condition_idx" in constant else 0
        b_idx = np.asarray(constant["task_b_idx"].values, dtype=np.int64)
        task_ids = self.tasks["task_id"].to_numpy()
        dataset = self.tasks["dataset"].to_numpy()
        return pd.DataFrame(
            {
                "a_idx": a_idx,
                "b_idx": b_idx,
                "task_a": task_ids[a_idx],
                "task_b": task_ids[b_idx],
                "dataset_a": dataset[a_idx],
                "dataset_b": dataset[b_idx],
                "n": np.asarray(constant["n_trials"].values, dtype=np.int64),
                "k": np.asarray(self.idata["observed_data"]["first_chosen"].values, dtype=np.int64),
                "condition_idx": np.broadcast_to(
                    np.asarray(condition, dtype=np.int64), a_idx.shape
                ),
            }
        )

    @property
    def completion_refusals(self) -> pd.DataFrame | None:
        """The refusal counts of completions the model saw (`fit --refusal-rates`), one row per
        task with completions: `task_idx`, `task_id`, `n` completions, `refusals`; None
        without them."""
        if "completion_refused" not in self.idata["observed_data"]:
            return None
        constant = self.idata["constant_data"]
        task_idx = np.asarray(constant["completed_task_idx"].values, dtype=np.int64)
        return pd.DataFrame(
            {
                "task_idx": task_idx,
                "task_id": self.tasks["task_id"].to_numpy()[task_idx],
                "n": np.asarray(constant["n_completions"].values, dtype=np.int64),
                "refusals": np.asarray(
                    self.idata["observed_data"]["completion_refused"].values, dtype=np.int64
                ),
            }
        )

    def save(self, out: str | Path, force: bool = False) -> Path:
        """Write the fit folder atomically (see the module's docstring)."""
        out = Path(out)
        with output_lock(out):
            return self.write_locked(out, force)

    def write_locked(self, out: Path, force: bool) -> Path:
        """`save` for a caller that already holds `output_lock(out)`."""
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
        diagnostics = json.dumps(self.diagnostics.to_dict(), indent=2) + "\n"
        write_atomically(partial / "diagnostics.json", diagnostics)
        if out.exists():
            # A kill between these two renames leaves the old fit in `replaced`, and the next
            # holder of the lock puts it back (`restore_replaced`).
            replaced = out.parent / f".{out.name}.replaced-{os.getpid()}"
            out.rename(replaced)
            partial.rename(out)
            shutil.rmtree(replaced)
        else:
            partial.rename(out)
        return out


def _replaced(out: Path) -> list[Path]:
    """Old fits moved aside by a `--force` save, newest first."""
    found = out.parent.glob(f".{glob.escape(out.name)}.replaced-*")
    return sorted(found, key=lambda path: path.stat().st_mtime, reverse=True)


def restore_replaced(out: Path) -> None:
    """Finish a `--force` swap that a kill interrupted (call under the output lock). With `out`
    gone, the old fit moved aside is put back, with a warning; with a fit at `out`, the swap had
    finished and the old fit is removed; anything else keeps it, with a warning."""
    for replaced in _replaced(out):
        if not out.exists():
            replaced.rename(out)
            warnings.warn(
                f"restored the fit '{out}' from '{replaced}', where a save killed while "
                "replacing it had left it",
                stacklevel=3,
            )
        elif is_fit_folder(out):
            shutil.rmtree(replaced)
        else:
            warnings.warn(
                f"'{replaced}' holds the fit that was at '{out}' before a save was killed while "
                "replacing it; it is kept",
                stacklevel=3,
            )


@contextmanager
def output_lock(out: Path) -> Iterator[None]:
    """Hold the lock of the fit folder `out`, after restoring a fit an interrupted swap hid."""
    make_folder(out.parent)
    with FolderLock(out.parent / f".{out.name}.lock", str(out), FitError):
        restore_replaced(out)
        yield


def _foreign(path: Path) -> list[str]:
    """Entries of the folder `path` that are not a fit's files."""
    return sorted(entry.name for entry in path.iterdir() if entry.name not in FIT_FILES)


def is_fit_folder(path: str | Path) -> bool:
    """Whether `path` is a folder that holds only a fit's files, its posterior.nc carrying the
    `bayespref_format` marker (of any format version)."""
    path = Path(path)
    if not (path / "posterior.nc").is_file() or _foreign(path):
        return False
    try:
        with xr.open_datatree(path / "posterior.nc", engine="h5netcdf") as stored:
            return "bayespref_format" in stored.attrs
    except (OSError, ValueError):
        return False


def ensure_writable(out: str | Path, force: bool) -> None:
    """Refuse an existing `out` unless `force`, and with `force` anything but a fit folder (or an
    empty folder): --force must never delete the user's other files."""
    out = Path(out)
    if not out.exists():
        return
    if not force:
        raise FitError(f"output folder '{out}' already exists; choose another or pass --force")
    if not out.is_dir():
        raise FitError(f"output path '{out}' exists and is not a folder")
    if any(out.iterdir()) and not is_fit_folder(out):
        foreign = _foreign(out)
        why = (
            f"it holds {listing(foreign)}, which a fit folder does not"
            if foreign
            else "its posterior.nc is not a fit's (no bayespref_format marker)"
        )
        raise FitError(
            f"'{out}' is not a fit folder ({why}); --force replaces only a fit folder: choose "
            "another --out"
        )


def ensure_not_fit_file(path: str | Path) -> None:
    """Refuse an output path that names one of a fit folder's files."""
    path = Path(path)
    if path.name in FIT_FILES and is_fit_folder(path.parent):
        raise FitError(
            f"'{path}' is a file of the fit folder '{path.parent}'; choose another --out"
        )


def _missing_fit(path: Path, missing: list[str]) -> FitError:
    hidden = _replaced(path)
    if not path.exists() and hidden:
        return FitError(
            f"'{path}' is missing: a save killed while replacing it left the previous fit in "
            f"'{hidden[0]}'; run `bayespref fit` on it again (which restores it first) or "
            "rename that folder back"
        )
    if path.exists() and not path.is_dir():
        return FitError(f"'{path}' is a file, not a fit folder")
    return FitError(f"'{path}' is not a complete fit folder (missing {', '.join(missing)})")


def _read_posterior(path: Path) -> xr.DataTree:
    source = path / "posterior.nc"
    try:
        with xr.open_datatree(source, engine="h5netcdf") as stored:
            return stored.load()
    except (OSError, ValueError) as error:  # h5py and xarray name neither the file nor the cause
        raise FitError(
            f"'{source}' cannot be read as a fit's posterior (truncated, empty or not "
            f"netCDF: {error})"
        ) from error


def _read_table(path: Path, name: str, **options) -> pd.DataFrame:
    source = path / name
    try:
        table = pd.read_csv(source, **options)
    except ValueError as error:  # pandas' EmptyDataError and UnicodeDecodeError among them
        raise FitError(f"'{source}' cannot be read as a table ({error})") from error
    require_columns(table, _TABLE_COLUMNS[name], str(source))
    return table


def _read_diagnostics(path: Path) -> Diagnostics:
    source = path / "diagnostics.json"
    try:
        return Diagnostics.from_dict(json.loads(source.read_text(encoding="utf-8")))
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise FitError(
            f"'{source}' is not a fit's diagnostics ({type(error).__name__}: {error})"
        ) from error


def _attribute(idata: xr.DataTree, path: Path, key: str):
    """A JSON attribute of posterior.nc."""
    try:
        return json.loads(idata.attrs[key])
    except (KeyError, ValueError, TypeError) as error:
        raise FitError(
            f"'{path / 'posterior.nc'}': attribute '{key}' is missing or unreadable ({error!r})"
        ) from error


def load_fit(path: str | Path) -> Fit:
    """Load a fit folder, checking that it is complete and that its spec matches its hash; a
    damaged file is a FitError naming it."""
    path = Path(path)
    missing = [name for name in FIT_FILES if not (path / name).exists()]
    if missing or not path.is_dir():
        raise _missing_fit(path, missing)
    idata = _read_posterior(path)
    attrs = idata.attrs
    if attrs.get("bayespref_format") != FIT_FORMAT:
        raise FitError(
            f"'{path}' was written in fit format {attrs.get('bayespref_format')}; this version "
            f"reads format {FIT_FORMAT}: refit with this version"
        )
    spec = ModelSpec.from_dict(_attribute(idata, path, "spec"), f"{path}/posterior.nc")
    if spec.hash != attrs.get("spec_hash"):
        raise FitError(
            f"'{path}': the stored spec hashes to {spec.hash}, not {attrs.get('spec_hash')}; "
            "the fit folder was altered"
        )
    datasets = _attribute(idata, path, "datasets")
    try:
        dataset_idx = np.asarray(idata["constant_data"]["task_dataset_idx"].values, dtype=np.int64)
        tasks = pd.DataFrame(
            {
                "task_id": idata["posterior"]["task"].values.astype(str),
                "dataset": np.asarray(datasets, dtype=object)[dataset_idx],
                "dataset_idx": dataset_idx,
            }
        )
    except (KeyError, IndexError) as error:
        raise FitError(f"'{path / 'posterior.nc'}' lacks a fit's groups ({error!r})") from error
    return Fit(
        idata=idata,
        spec=spec,
        tasks=tasks,
        datasets=datasets,
        conditions=_attribute(idata, path, "conditions"),
        utilities=_read_table(path, "utilities.csv", dtype=_ID_COLUMNS, keep_default_na=False),
        params=_read_table(path, "params.csv", keep_default_na=False),
        diagnostics=_read_diagnostics(path),
        task_counts=_read_table(path, "task_counts.csv", dtype=_ID_COLUMNS, keep_default_na=False),
        ppc=_read_table(path, "ppc.csv"),
    )
