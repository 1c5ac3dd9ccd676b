"""A comparisons file mixing protocols, templates or models is an error unless pooled or told
apart by condition."""

from __future__ import annotations

import pandas as pd
import pytest
from typer.testing import CliRunner

from bayespref.cli.app import app
from bayespref.data.choice_data import load_choice_data
from bayespref.data.comparisons import read_comparisons
from bayespref.errors import DataError


def comparisons(models: list[str], conditions: list[str] | None = None) -> pd.DataFrame:
    n = len(models)
    frame = pd.DataFrame(
        {
            "task_a": ["t1", "t2", "t3", "t1"][:n],
            "task_b": ["t2", "t3", "t1", "t3"][:n],
            "choice": ["a", "b", "a", "b"][:n],
            "dataset_a": "d",
            "dataset_b": "d",
            "model": models,
        }
    )
    return frame if conditions is None else frame.assign(condition=conditions)


def test_two_models_in_one_condition_are_an_error_naming_row_and_column(tmp_path):
    path = tmp_path / "mixed.csv"
    comparisons(["m1", "m1", "m2", "m1"]).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"row 3 \(line 4\), column 'model': 'm2' here but 'm1'"):
        read_comparisons(path)
    assert len(read_comparisons(path, pool=True)) == 4
    assert load_choice_data(path, pool=True).n_trials == 4
    result = CliRunner().invoke(app, ["fit", str(path), "--out", str(tmp_path / "fit")])
    assert result.exit_code == 2 and "--pool" in result.output and "column 'model'" in result.output


def test_models_told_apart_by_condition_are_fine_and_jsonl_is_checked_too(tmp_path):
    frame = comparisons(["m1", "m1", "m2", "m2"], ["c1", "c1", "c2", "c2"])
    assert set(read_comparisons(frame)["condition"]) == {"c1", "c2"}
    path = tmp_path / "mixed.jsonl"
    comparisons(["m1", "m1", "m1", "m2"]).to_json(path, orient="records", lines=True)
    with pytest.raises(DataError, match="row 4, column 'model'"):
        read_comparisons(path)
