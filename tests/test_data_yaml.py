"""Comparisons from YAML measurement files shaped like the reference research pipeline's."""

from __future__ import annotations

from pathlib import Path

import pytest

from bayespref.data.choice_data import load_choice_data
from bayespref.data.comparisons import read_comparisons
from bayespref.errors import DataError

MEASUREMENTS = Path(__file__).parent / "fixtures" / "measurements.yaml"


def test_measurement_files_read_as_comparisons_with_origins_as_datasets(tmp_path):
    table = read_comparisons(MEASUREMENTS)
    assert table["task_a"].tolist() == ["wildchat_12", "math_3", "alpaca_7", "math_3"]
    assert table["choice"].tolist() == ["a", "b", "refusal", "a"]
    assert table["dataset_a"].tolist() == ["wildchat", "math", "alpaca", "math"]
    assert table["dataset_b"].tolist() == ["math", "wildchat", "math", "alpaca"]
    copy = tmp_path / "run.yml"
    copy.write_text(MEASUREMENTS.read_text())
    assert read_comparisons(copy).equals(table)
    data = load_choice_data(MEASUREMENTS)
    assert sorted(data.tasks["task_id"]) == ["alpaca_7", "math_3", "wildchat_12"]
    assert data.outcome_counts["refusal"] == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- task_a: x\n  task_b: [y\n", "not valid YAML at line 3"),
        ("task_a: x\n", "expected a YAML list of trials"),
        ("- task_a: x\n  task_b: y\n  choice: a\n- just text\n", "row 2: expected a mapping"),
        ("- task_a: x\n  task_b: {id: y}\n  choice: a\n", "row 1, column 'task_b': expected a"),
        ("- task_a: x\n  task_b: y\n  choice: maybe\n", "row 1, column 'choice': unknown choice"),
        ("- task_a: x\n  choice: a\n", "task_b"),
    ],
)
def test_bad_measurement_files_name_file_row_and_column(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(DataError, match="bad.yaml") as error:
        read_comparisons(path)
    assert message in str(error.value)
