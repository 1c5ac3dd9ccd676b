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
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from bayespref.errors import FitError
from bayespref.io.atomic import write_atomically
from bayespref.io.locking import FolderLock
from bayespref.io.tables import write_table
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
        `task_a`, `task_b`, `dataset_a`, `dataset_b`, `n` choice trials and `k` won by the
        first-shown task."""
        constant = self.idata["constant_data"]
        a_idx = np.asarray(constant["task_a_idx"].values, dtype=np.int64)
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
        diagnostics=Diagnostics.from_dict(json.loads((path / "diagnostics.json").read_text())),
        task_counts=pd.read_csv(path / "task_counts.csv", dtype=_ID_COLUMNS, keep_default_na=False),
        ppc=pd.read_csv(path / "ppc.csv"),
    )
