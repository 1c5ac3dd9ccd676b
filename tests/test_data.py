from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from bayespref.data.choice_data import data_hash, load_choice_data
from bayespref.data.comparisons import read_comparisons, read_tasks
from bayespref.errors import DataError, DataWarning
from bayespref.io.tables import read_table


def write(tmp_path, name: str, text: str | bytes):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


GOOD = "task_a,task_b,choice,dataset_a,dataset_b\nx,y,a,d1,d2\ny,x,b,d2,d1\nx,z,refusal,d1,d1\n"


def test_reads_csv_with_datasets_and_default_condition(tmp_path):
    frame = read_comparisons(write(tmp_path, "c.csv", GOOD))
    assert list(frame["choice"]) == ["a", "b", "refusal"]
    assert set(frame["condition"]) == {"default"}


def test_reads_parquet_and_jsonl_the_same_as_csv(tmp_path):
    csv = read_comparisons(write(tmp_path, "c.csv", GOOD))
    raw = pd.read_csv(tmp_path / "c.csv")
    raw.to_parquet(tmp_path / "c.parquet", index=False)
    raw.to_json(tmp_path / "c.jsonl", orient="records", lines=True)
    for name in ("c.parquet", "c.jsonl"):
        other = read_comparisons(tmp_path / name)
        pd.testing.assert_frame_equal(other[csv.columns].astype(str), csv.astype(str))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "task_a,task_b,choice\nx,y,a\nx,y,first\n",
            "file '{f}', row 2 (line 3), column 'choice': unknown choice 'first'",
        ),
        (
            "task_a,task_b,choice\nx,y,a\nx,x,b\n",
            "file '{f}', row 2 (line 3), column 'task_b': task 'x' is compared with itself",
        ),
        (
            "task_a,task_b,choice\nx,,a\n",
            "file '{f}', row 1 (line 2), column 'task_b': empty value",
        ),
        ("task_a,choice\nx,a\n", "file '{f}', column 'task_b': required column missing"),
        ("task_a;task_b;choice\nx;y;a\n", "is the file delimited by ';'?"),
        ("", "file '{f}': the file is empty"),
        ("task_a,task_b,choice\n", "file '{f}': the table has a header but no rows"),
        (
            "task_a,task_b,choice,dataset_a,dataset_b\nx,y,a,d1,d2\nx,z,a,d3,d1\n",
            "file '{f}', row 2 (line 3), column 'dataset_a': task 'x' is in dataset 'd3' here",
        ),
        (
            "task_a,task_b,choice,dataset_a\nx,y,a,d1\n",
            "file '{f}', column 'dataset_b': missing dataset column",
        ),
        (
            "task_a,task_b,choice,dataset_a,dataset_b\nx,y,a,d1,\n",
            "file '{f}', row 1 (line 2), column 'dataset_b': empty value",
        ),
    ],
)
def test_bad_comparisons_name_file_row_and_column(tmp_path, text, message):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(DataError) as error:
        read_comparisons(path)
    assert message.format(f=path) in str(error.value)


def test_choices_are_read_case_and_space_insensitively(tmp_path):
    path = write(tmp_path, "c.csv", "task_a,task_b,choice\nx,y, A \nx,y,Refusal\n")
    with pytest.warns(DataWarning, match="one dataset 'all'"):
        frame = read_comparisons(path)
    assert list(frame["choice"]) == ["a", "refusal"]


def test_non_utf8_bytes_are_located(tmp_path):
    path = write(tmp_path, "c.csv", b"task_a,task_b,choice\nx,y,a\nx,\xff\xfe,b\n")
    with pytest.raises(DataError, match=r"row 2 \(line 3\): bytes that are not UTF-8"):
        read_table(path)


def test_unknown_file_type_and_missing_file(tmp_path):
    with pytest.raises(DataError, match="unknown file type '.xlsx'"):
        read_table(write(tmp_path, "c.xlsx", "x"))
    with pytest.raises(DataError, match="no such file"):
        read_table(tmp_path / "absent.csv")


def test_tasks_table_duplicates_and_missing_ids(tmp_path):
    tasks = write(tmp_path, "tasks.csv", "task_id,dataset\nx,d1\ny,d2\nx,d1\n")
    with pytest.raises(
        DataError,
        match=r"row 3 \(line 4\), column 'task_id': duplicate task_id 'x' "
        r"\(also at row 1\)",
    ):
        read_tasks(tasks)
    tasks = write(tmp_path, "tasks.csv", "task_id,dataset\nx,d1\ny,d2\n")
    comparisons = write(tmp_path, "c.csv", "task_a,task_b,choice\nx,y,a\nq,x,b\n")
    with pytest.raises(
        DataError,
        match=r"row 2 \(line 3\), column 'task_a': task 'q' is not in "
        r"the tasks table",
    ):
        read_comparisons(comparisons, tasks)


def test_tasks_table_fills_datasets_and_must_agree(tmp_path):
    tasks = write(tmp_path, "tasks.csv", "task_id,dataset,prompt\nx,d1,p\ny,d2,q\n")
    frame = read_comparisons(write(tmp_path, "c.csv", "task_a,task_b,choice\nx,y,a\n"), tasks)
    assert (frame["dataset_a"].tolist(), frame["dataset_b"].tolist()) == (["d1"], ["d2"])
    clash = write(tmp_path, "c2.csv", "task_a,task_b,choice,dataset_a,dataset_b\nx,y,a,d1,d9\n")
    with pytest.raises(DataError, match="column 'dataset_b': dataset 'd9' disagrees"):
        read_comparisons(clash, tasks)


def test_aggregation_counts_choices_per_ordered_pair_and_condition():
    frame = pd.DataFrame(
        {
            "task_a": ["x", "x", "x", "y", "x", "x"],
            "task_b": ["y", "y", "y", "x", "y", "y"],
            "choice": ["a", "a", "b", "a", "refusal", "a"],
            "condition": ["c1", "c1", "c1", "c1", "c1", "c2"],
            "dataset_a": "d",
            "dataset_b": "d",
        }
    )
    data = load_choice_data(frame)
    cells = data.cells.set_index(["task_a", "task_b", "condition"])
    assert cells.loc[("x", "y", "c1"), ["n", "k", "r"]].tolist() == [3, 2, 1]
    assert cells.loc[("y", "x", "c1"), ["n", "k"]].tolist() == [1, 1]
    assert cells.loc[("x", "y", "c2"), ["n", "k"]].tolist() == [1, 1]
    assert data.outcome_counts == {"a": 4, "b": 1, "refusal": 1, "unparsed": 0}
    counts = data.task_counts.set_index("task_id")
    assert counts.loc["x"].to_dict() == {
        "n_trials": 5,
        "n_wins": 3,
        "n_losses": 2,
        "n_shown_first": 5,
        "n_refusal": 1,
        "n_unparsed": 0,
    }
    assert counts.loc["y", "n_wins"] == 2 and counts.loc["y", "n_refusal"] == 1


def test_disconnected_graph_and_uncompared_tasks_warn_with_names():
    frame = pd.DataFrame(
        {"task_a": ["a1", "a2", "b1"], "task_b": ["a2", "a3", "b2"], "choice": ["a", "b", "a"]}
    )
    tasks = pd.DataFrame({"task_id": ["a1", "a2", "a3", "b1", "b2", "lonely"], "dataset": "d"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        data = load_choice_data(frame, tasks)
    messages = " | ".join(str(w.message) for w in caught if w.category is DataWarning)
    assert "2 disconnected parts" in messages
    assert "3 tasks (a1, a2, a3)" in messages and "2 tasks (b1, b2)" in messages
    assert "never compared" in messages and "lonely" in messages
    assert "lonely" not in set(data.tasks["task_id"])


def test_only_refusals_is_an_error():
    frame = pd.DataFrame({"task_a": ["x"], "task_b": ["y"], "choice": ["refusal"]})
    with (
        pytest.raises(DataError, match="no trial has choice 'a' or 'b'"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        load_choice_data(frame)


def test_data_hash_ignores_row_order_but_not_positions():
    frame = pd.DataFrame(
        {
            "task_a": ["x", "y"],
            "task_b": ["y", "z"],
            "choice": ["a", "b"],
            "condition": "c",
            "dataset_a": "d",
            "dataset_b": "d",
        }
    )
    assert data_hash(frame) == data_hash(frame.iloc[::-1])
    swapped = frame.assign(task_a=frame["task_b"], task_b=frame["task_a"])
    assert data_hash(frame) != data_hash(swapped)


def test_task_order_follows_tasks_table():
    frame = pd.DataFrame({"task_a": ["z", "y"], "task_b": ["y", "x"], "choice": ["a", "b"]})
    tasks = pd.DataFrame({"task_id": ["x", "y", "z"], "dataset": ["d2", "d1", "d2"]})
    data = load_choice_data(frame, tasks)
    assert data.tasks["task_id"].tolist() == ["x", "y", "z"]
    assert data.datasets == ["d1", "d2"]
    np.testing.assert_array_equal(data.task_dataset_idx, [1, 0, 1])
