"""Peak memory and wall time of reading a large comparisons file into model cells.

Generates comparisons files (default 5,000,000 trials between random pairs of 200 or of 2,000
tasks, 5 datasets, 3 conditions, with provenance columns) once per format, then runs
`load_choice_data` on each in a fresh process, so that each peak RSS is its own. With 200 tasks
the trials fall into about 120,000 cells; with 2,000 into about 4 million (nearly one per trial,
the worst case for memory, which follows cells). `--reference` measures another data.py (e.g. a
copy of an older version) on the same files, for a before/after table.

Usage: python benchmarks/read_memory.py [--rows 5000000] [--tasks 200,2000]
            [--formats csv,parquet,jsonl] [--reference /path/to/old/data.py] [--folder DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

N_DATASETS = 5
CONDITIONS = np.array(["default", "persona_1", "persona_2"])
BLOCK = 500_000


def _block(rows: int, n_tasks: int, rng: np.random.Generator) -> pd.DataFrame:
    first = rng.integers(0, n_tasks, rows)
    second = (first + rng.integers(1, n_tasks, rows)) % n_tasks
    return pd.DataFrame(
        {
            "task_a": np.char.add("task_", first.astype(str)),
            "task_b": np.char.add("task_", second.astype(str)),
            "choice": rng.choice(
                ["a", "b", "refusal", "unparsed"], rows, p=[0.48, 0.48, 0.03, 0.01]
            ),
            "dataset_a": np.char.add("dataset_", (first % N_DATASETS).astype(str)),
            "dataset_b": np.char.add("dataset_", (second % N_DATASETS).astype(str)),
            "condition": rng.choice(CONDITIONS, rows),
            "sample": rng.integers(0, 5, rows),
            "protocol": "pre-task-revealed",
            "model": "some-org/some-model-7b-instruct",
        }
    )


def generate(path: Path, rows: int, n_tasks: int, seed: int = 0) -> None:
    """Write `rows` trials between random pairs of `n_tasks` tasks."""
    rng = np.random.default_rng(seed)
    blocks = [_block(min(BLOCK, rows - start), n_tasks, rng) for start in range(0, rows, BLOCK)]
    if path.suffix == ".parquet":
        pd.concat(blocks, ignore_index=True).to_parquet(path, index=False, row_group_size=BLOCK)
        return
    with path.open("w") as handle:
        for index, block in enumerate(blocks):
            if path.suffix == ".csv":
                block.to_csv(handle, index=False, header=index == 0)
            else:
                block.to_json(handle, orient="records", lines=True)


def _load_module(reference: str | None):
    if reference is None:
        from bayespref.data import choice_data

        return choice_data
    spec = importlib.util.spec_from_file_location("reference_data", reference)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _peak_mb() -> float:
    """This process's peak RSS. VmHWM, unlike ru_maxrss, does not carry over the parent's peak
    across fork and exec."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(path: str, reference: str | None) -> dict:
    """Run in a child process: peak RSS, and above the imports, while loading `path` into cells."""
    module = _load_module(reference)
    before = _peak_mb()
    started = time.perf_counter()
    data = module.load_choice_data(path)
    wall = time.perf_counter() - started
    peak = _peak_mb()
    return {
        "wall_s": round(wall, 1),
        "peak_mb": round(peak),
        "peak_above_imports_mb": round(peak - before),
        "n_trials": data.n_trials,
        "n_cells": len(data.cells),
        "data_hash": data.data_hash,
    }


def _child(path: Path, reference: str | None) -> dict:
    command = [sys.executable, __file__, "--measure", str(path)]
    if reference:
        command += ["--reference", reference]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--formats", default="csv")
    parser.add_argument(
        "--tasks", default="200,2000", help="task counts: 3 conditions give up to 3 n (n - 1) cells"
    )
    parser.add_argument("--reference", help="a data.py to measure as well (before/after)")
    parser.add_argument("--folder", help="where the generated files are kept (default: temporary)")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure, args.reference)))
        return
    folder = Path(args.folder or tempfile.mkdtemp(prefix="read_memory_"))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n_tasks in map(int, args.tasks.split(",")):
        for suffix in args.formats.split(","):
            path = folder / f"comparisons_{args.rows}_{n_tasks}.{suffix}"
            if not path.exists():
                generate(path, args.rows, n_tasks)
            size_mb = round(path.stat().st_size / 2**20)
            for label, reference in (("reference", args.reference), ("bayespref", None)):
                if label == "reference" and reference is None:
                    continue
                rows.append({"tasks": n_tasks, "format": suffix, "file_mb": size_mb})
                rows[-1] |= {"reader": label, **_child(path, reference)}
    print(pd.DataFrame(rows).to_string(index=False))


if __name__ == "__main__":
    main()
