"""Task sets: the shipped self-written samples, local files, and public datasets.

Every loader returns the tasks contract: `task_id` (unique), `dataset`, `prompt`, plus extras.
Public datasets are read through the `datasets` library (imported only when used); the
functions that turn one of their rows into a task are plain functions, usable on any rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from bayespref.data.comparisons import validate_tasks
from bayespref.errors import DataError
from bayespref.io.locations import where
from bayespref.io.tables import read_table, require_columns, text_column

TASK_COLUMNS = ("task_id", "dataset", "prompt")
SHIPPED_CATEGORIES = ("chat", "instructions", "maths", "value_conflict", "decline")
SHIPPED = "shipped"

Mapper = Callable[[Mapping], dict | None]


def validate_task_set(frame: pd.DataFrame, source: str = "<tasks>") -> pd.DataFrame:
    """The tasks contract with a non-empty `prompt` for every task."""
    tasks = validate_tasks(frame, source)
    require_columns(tasks, TASK_COLUMNS, source)
    tasks["prompt"] = text_column(tasks, "prompt", source)
    return tasks


def shipped_dir() -> Path:
    """The shipped samples: inside an installed package, or `data/tasks/` of a source checkout."""
    package = Path(__file__).resolve().parents[1]  # bayespref/
    for candidate in (package / "task_samples", package.parent / "data" / "tasks"):
        if candidate.is_dir():
            return candidate
    raise DataError("the shipped task samples (data/tasks/) are missing from this installation")


def load_shipped(categories: Iterable[str] | None = None) -> pd.DataFrame:
    """The self-written samples: chat requests, instructions, competition maths, value-conflict
    questions and requests a model should decline (mild, non-operational)."""
    chosen = list(categories or SHIPPED_CATEGORIES)
    unknown = [name for name in chosen if name not in SHIPPED_CATEGORIES]
    if unknown:
        raise DataError(
            f"unknown shipped task set '{unknown[0]}'; choose from {', '.join(SHIPPED_CATEGORIES)}"
        )
    frames = [read_table(shipped_dir() / f"{name}.csv") for name in chosen]
    return validate_task_set(pd.concat(frames, ignore_index=True), SHIPPED)


def load_tasks(spec: str | Path) -> pd.DataFrame:
    """`shipped`, `shipped:chat,maths` (some shipped sets), or a CSV/Parquet/JSONL file."""
    text = str(spec)
    if text == SHIPPED or text.startswith(f"{SHIPPED}:"):
        names = [name.strip() for name in text.partition(":")[2].split(",") if name.strip()]
        return load_shipped(names or None)
    return validate_task_set(read_table(spec), text)


def _task_id(dataset: str, prompt: str) -> str:
    return f"{dataset}-{hashlib.sha256(prompt.encode()).hexdigest()[:10]}"


def tasks_from_rows(
    rows: Iterable[Mapping], dataset: str, mapper: Mapper, n: int | None = None
) -> pd.DataFrame:
    """Map source rows to tasks (skipping rows the mapper rejects and repeated prompts), up to n.

    The task id is the dataset name and a hash of the prompt, so it is stable across runs.
    """
    tasks: dict[str, dict] = {}
    for row in rows:
        mapped = mapper(row)
        if mapped is None:
            continue
        prompt = str(mapped.pop("prompt")).strip()
        if not prompt:
            continue
        task_id = _task_id(dataset, prompt)
        tasks.setdefault(
            task_id, {"task_id": task_id, "dataset": dataset, "prompt": prompt, **mapped}
        )
        if n is not None and len(tasks) >= n:
            break
    return pd.DataFrame(list(tasks.values()), columns=None if tasks else list(TASK_COLUMNS))


def wildchat_task(row: Mapping, skip_toxic: bool = True) -> dict | None:
    """allenai/WildChat-1M: the first user turn of an English conversation."""
    if row.get("language") != "English" or (skip_toxic and row.get("toxic")):
        return None
    turns = [turn for turn in row.get("conversation") or [] if turn.get("role") == "user"]
    if not turns:
        return None
    return {"prompt": turns[0].get("content") or "", "source_model": row.get("model")}


def alpaca_task(row: Mapping) -> dict | None:
    """tatsu-lab/alpaca: the instruction, followed by its input when there is one."""
    instruction = (row.get("instruction") or "").strip()
    extra = (row.get("input") or "").strip()
    return {"prompt": f"{instruction}\n\n{extra}" if extra else instruction}


def math_task(row: Mapping) -> dict | None:
    """EleutherAI/hendrycks_math: the problem, with its level and subject."""
    return {
        "prompt": row.get("problem") or "",
        "level": row.get("level"),
        "subject": row.get("type"),
    }


def stress_task(row: Mapping) -> dict | None:
    """jifanz/stress_testing_model_spec: the query, with the two values it sets against each
    other."""
    return {
        "prompt": row.get("query") or "",
        "value1": row.get("value1"),
        "value2": row.get("value2"),
    }


@dataclass(frozen=True)
class HubSource:
    repo: str
    mapper: Mapper
    split: str = "train"
    configs: tuple[str | None, ...] = (None,)


HUB_SOURCES = {
    "wildchat": HubSource("allenai/WildChat-1M", wildchat_task),
    "alpaca": HubSource("tatsu-lab/alpaca", alpaca_task),
    "math": HubSource(
        "EleutherAI/hendrycks_math",
        math_task,
        split="test",
        configs=(
            "algebra",
            "counting_and_probability",
            "geometry",
            "intermediate_algebra",
            "number_theory",
            "prealgebra",
            "precalculus",
        ),
    ),
    "stress": HubSource("jifanz/stress_testing_model_spec", stress_task, split="all_models"),
}


def load_hub(name: str, n: int, seed: int = 0, split: str | None = None) -> pd.DataFrame:
    """n tasks from a public dataset (a key of HUB_SOURCES), streamed and shuffled with `seed`;
    with several configs (MATH's subjects) the n tasks are spread evenly across them."""
    if name not in HUB_SOURCES:
        raise DataError(f"unknown dataset '{name}'; choose from {', '.join(HUB_SOURCES)}")
    try:
        import datasets
    except ImportError as error:
        raise DataError("loading public datasets needs the `datasets` package") from error
    source = HUB_SOURCES[name]
    per_config = -(-n // len(source.configs))
    frames = []
    for config in source.configs:
        stream = datasets.load_dataset(
            source.repo, config, split=split or source.split, streaming=True
        ).shuffle(seed=seed, buffer_size=10_000)
        frames.append(tasks_from_rows(stream, name, source.mapper, per_config))
    tasks = pd.concat(frames, ignore_index=True).drop_duplicates("task_id")
    return stratified_sample(tasks, n, seed) if len(tasks) > n else tasks


def read_bailbench(path: str | Path, dataset: str = "bailbench") -> pd.DataFrame:
    """A BailBench-style CSV of adversarial requests from a local file: a `prompt` (or `content`)
    column and optional `category` and `subcategory` columns, kept as extras."""
    frame = read_table(path)
    column = next((name for name in ("prompt", "content") if name in frame.columns), None)
    if column is None:
        raise DataError(
            f"{where(str(path), column='prompt')}: needs a 'prompt' or 'content' column"
        )
    extras = [name for name in ("category", "subcategory") if name in frame.columns]
    rows = frame.rename(columns={column: "prompt"})[["prompt", *extras]].to_dict("records")
    return validate_task_set(
        tasks_from_rows(rows, dataset, lambda row: dict(row)), str(path)
    ).reset_index(drop=True)


def stratified_sample(tasks: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """n tasks spread as evenly as possible over datasets (a small dataset gives all it has and
    the rest is shared among the others), drawn with `seed`, in the input's row order."""
    if n < 1:
        raise DataError(f"the number of tasks to sample must be positive (got {n})")
    if n >= len(tasks):
        return tasks.reset_index(drop=True)
    sizes = tasks.groupby("dataset", sort=True).size()
    # The largest per-dataset cap whose capped sizes still fit in n; datasets above the cap
    # share what is left, one task each, in name order.
    low, high = 0, int(sizes.max())
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if sizes.clip(upper=middle).sum() <= n else (low, middle - 1)
    quota = sizes.clip(upper=low)
    quota[sizes.index[sizes > low][: n - int(quota.sum())]] += 1
    rng = np.random.default_rng(seed)
    chosen = []
    for name, group in tasks.groupby("dataset", sort=True):
        chosen.extend(rng.choice(group.index.to_numpy(), size=int(quota[name]), replace=False))
    return tasks.loc[sorted(chosen)].reset_index(drop=True)
