"""Broken and hostile input: a clear DataError naming the place, never a deep traceback.

By area, beside this one: test_hostile_folders.py (fit folders, outputs and every command's
one-line error) and test_hostile_names.py (ids, names, rating scales, table cells).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import warnings

import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayespref as bp
from bayespref.data.cells import CHOICES, HASHED
from bayespref.data.choice_data import data_hash, load_choice_data
from bayespref.data.comparisons import read_comparisons
from bayespref.errors import DataError, DataWarning, SpecError
from bayespref.io import tables
from bayespref.model.spec import resolve_spec

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
CHUNK_ROWS = tables.CHUNK_ROWS


@FUZZ
@given(st.binary(max_size=400))
def test_arbitrary_bytes_give_a_data_error_or_a_valid_table(tmp_path, raw):
    path = tmp_path / "fuzz.csv"
    path.write_bytes(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        try:
            frame = read_comparisons(path)
        except DataError as error:
            assert str(path) in str(error)
            return
    assert set(frame["choice"]) <= set(CHOICES)
    assert (frame["task_a"] != frame["task_b"]).all()


@FUZZ
@given(st.lists(st.text(max_size=8), min_size=1, max_size=6))
def test_any_choice_values_are_read_exactly_or_rejected_with_their_row(tmp_path, choices):
    frame = pd.DataFrame({"task_a": "x", "task_b": "y", "choice": choices})
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            result = read_comparisons(frame)
    except DataError as error:
        assert "column 'choice'" in str(error) and "row " in str(error)
        return
    assert list(result["choice"]) == [c.strip().lower() for c in choices]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"task_a": ["x"], "task_b": ["x"], "choice": ["a"]}, "compared with itself"),
        (
            {"task_a": ["x", "y"], "task_b": ["y", "x"], "choice": ["refusal", "unparsed"]},
            "no trial has choice 'a' or 'b'",
        ),
        ({"task_a": ["x"], "task_b": ["y"], "choice": [None]}, "unknown choice"),
        (
            {"task_a": ["x"], "task_b": ["y"], "choice": ["a"], "condition": [""]},
            "column 'condition': empty value",
        ),
    ],
)
def test_degenerate_tables_are_refused(rows, message):
    with pytest.raises(DataError, match=message), warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        load_choice_data(pd.DataFrame(rows))


def test_single_dataset_and_first_position_always_winning_are_accepted():
    frame = pd.DataFrame({"task_a": ["x", "y", "z"], "task_b": ["y", "z", "x"], "choice": "a"})
    with pytest.warns(DataWarning, match="one dataset 'all'"):
        data = load_choice_data(frame)
    assert data.datasets == ["all"] and data.cells["k"].sum() == 3


def test_fit_folder_from_another_format_is_refused(small_fit_dir, tmp_path):
    copy = tmp_path / "old"
    shutil.copytree(small_fit_dir, copy)
    with xr.open_datatree(copy / "posterior.nc", engine="h5netcdf") as tree:
        tree = tree.load()
    tree.attrs["bayespref_format"] = 0
    tree.to_netcdf(copy / "posterior.nc", engine="h5netcdf")
    with pytest.raises(bp.FitError, match="fit format 0"):
        bp.load_fit(copy)


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_wrong_delimiters_are_named(tmp_path, delimiter):
    path = tmp_path / "c.csv"
    path.write_text(delimiter.join(["task_a", "task_b", "choice"]) + "\nx" + delimiter + "y\n")
    with pytest.raises(DataError, match=rf"is the file delimited by {re.escape(repr(delimiter))}"):
        read_comparisons(path)


def test_renamed_columns_list_what_was_found(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("first,second,choice\nx,y,a\n")
    with pytest.raises(
        DataError,
        match=r"column 'task_a': required column missing \(needs task_a, task_b, choice; "
        r"found first, second, choice\)",
    ):
        read_comparisons(path)


def test_padded_headers_ids_and_mixed_case_choices_are_read(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text(" task_a , task_b , choice \n x , y , B \ny,x,Refusal\n")
    with pytest.warns(DataWarning, match="one dataset"):
        frame = read_comparisons(path)
    assert frame[["task_a", "task_b", "choice"]].values.tolist() == [
        ["x", "y", "b"],
        ["y", "x", "refusal"],
    ]


def test_non_utf8_bytes_in_jsonl_and_after_the_first_block_are_located(tmp_path, monkeypatch):
    raw = b'{"task_a": "x", "task_b": "y", "choice": "a"}\n{"task_a": "\xe9"}\n'
    path = tmp_path / "c.jsonl"
    path.write_bytes(raw)
    with pytest.raises(
        DataError, match=rf"row 2: bytes that are not UTF-8 at byte {raw.index(b'\xe9')};"
    ):
        read_comparisons(path)
    # Blocks of 5 bytes split a valid two-byte character before the bad byte.
    monkeypatch.setattr(tables, "_BLOCK_BYTES", 5)
    raw = b"task_a,task_b,choice\n" + "é,y,a\n".encode() * 5 + b"x,\xff,b\n"
    path = tmp_path / "c.csv"
    path.write_bytes(raw)
    with pytest.raises(
        DataError,
        match=rf"row 6 \(line 7\): bytes that are not UTF-8 at byte {raw.index(b'\xff')};",
    ):
        read_comparisons(path)


def test_a_single_task_is_only_compared_with_itself():
    with pytest.raises(
        DataError, match=r"row 1, column 'task_b': task 'x' is compared with itself"
    ):
        load_choice_data(pd.DataFrame({"task_a": ["x", "x"], "task_b": ["x", "x"], "choice": "a"}))


def _write(frame: pd.DataFrame, path):
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_huge_files_are_read_in_chunks_with_the_same_result(
    tmp_path, monkeypatch, small_simulation, suffix
):
    path = _write(small_simulation.comparisons, tmp_path / f"c{suffix}")
    whole = load_choice_data(path, small_simulation.tasks)
    whole_table = read_comparisons(path)
    monkeypatch.setattr(tables, "CHUNK_ROWS", 97)
    chunked = load_choice_data(path, small_simulation.tasks)
    for name in ("tasks", "cells", "task_counts"):
        pd.testing.assert_frame_equal(getattr(whole, name), getattr(chunked, name))
    assert (whole.data_hash, whole.n_trials) == (chunked.data_hash, chunked.n_trials)
    assert whole.outcome_counts == chunked.outcome_counts
    pd.testing.assert_frame_equal(whole_table, read_comparisons(path))


def test_errors_in_later_chunks_name_the_row_in_the_file(tmp_path, monkeypatch):
    monkeypatch.setattr(tables, "CHUNK_ROWS", 3)
    rows = ["task_a,task_b,choice,dataset_a,dataset_b"] + ["x,y,a,d1,d2"] * 6
    path = tmp_path / "c.csv"
    path.write_text("\n".join([*rows, "x,y,first,d1,d2"]) + "\n")
    with pytest.raises(
        DataError,
        match=r"row 7 \(line 8\), column 'choice': unknown choice 'first'; expected one of a, b, "
        r"refusal, unparsed \(1 such rows in rows 7-7\)",
    ):
        load_choice_data(path)
    path.write_text("\n".join([*rows, "y,x,b,d2,d3"]) + "\n")
    with pytest.raises(
        DataError,
        match=r"row 7 \(line 8\), column 'dataset_b': task 'x' is in dataset 'd3' here but in "
        r"'d1' in an earlier row",
    ):
        load_choice_data(path)
    path = tmp_path / "c.jsonl"
    lines = ['{"task_a": "x", "task_b": "y", "choice": "a"}'] * 3
    late = '{"task_a": "x", "task_b": "y", "choice": "a", "condition": "c2"}'
    path.write_text("\n".join([*lines, late]) + "\n")
    with (
        pytest.raises(DataError, match=r"row 4, column 'condition': the column first appears"),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", DataWarning)
        load_choice_data(path)


def test_data_hash_is_the_sorted_trials_csv_so_old_fits_still_compare():
    frame = pd.DataFrame(
        {
            "task_a": ["x", "y", 'q,"z"', "x", "x"],
            "task_b": ["y", "x", "x", "y", "y"],
            "choice": ["a", "b", "unparsed", "a", "refusal"],
            "condition": ["c", "c", "d", "c", "c"],
            "dataset_a": ["d1", "d2", "d1", "d1", "d1"],
            "dataset_b": ["d2", "d1", "d1", "d2", "d2"],
        }
    )
    canonical = frame[HASHED].sort_values(HASHED).to_csv(index=False)
    assert data_hash(frame) == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert load_choice_data(frame).data_hash == data_hash(frame)


TRIALS = st.lists(
    st.tuples(
        st.sampled_from(["x", "y", "z", "w,v", 'q"']),
        st.sampled_from(["x", "y", "z", "w,v", 'q"']),
        st.sampled_from(["a", "b", "refusal", "unparsed"]),
        st.sampled_from(["default", "c1"]),
    ),
    min_size=1,
    max_size=12,
)


@FUZZ
@given(TRIALS, st.integers(1, 5))
def test_any_table_reads_the_same_whole_or_in_chunks(tmp_path, monkeypatch, trials, chunk_rows):
    frame = pd.DataFrame(trials, columns=["task_a", "task_b", "choice", "condition"])
    path = _write(frame, tmp_path / "c.csv")
    results = []
    for rows in (CHUNK_ROWS, chunk_rows):
        monkeypatch.setattr(tables, "CHUNK_ROWS", rows)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DataWarning)
            try:
                results.append(load_choice_data(path))
            except DataError as error:
                assert str(path) in str(error)
                results.append(None)
    whole, chunked = results
    if whole is None or chunked is None:
        # Several bad rows: each read names the first it meets, and both refuse the table.
        assert whole is chunked
        return
    for name in ("tasks", "cells", "task_counts"):
        pd.testing.assert_frame_equal(getattr(whole, name), getattr(chunked, name))
    shuffled = frame.sample(frac=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        assert chunked.data_hash == load_choice_data(shuffled).data_hash


def test_model_spec_values_must_be_strings(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text("noise = 3\n")
    with pytest.raises(SpecError, match=r"mine.toml: key 'noise' must be a string, got 3"):
        resolve_spec(path)


def test_fit_folder_missing_a_file_of_this_version_is_refused(small_fit_dir, tmp_path):
    copy = tmp_path / "older"
    shutil.copytree(small_fit_dir, copy)
    (copy / "ppc.csv").unlink()
    with pytest.raises(bp.FitError, match=r"not a complete fit folder \(missing ppc.csv\)"):
        bp.load_fit(copy)
