"""Broken and hostile input: a clear DataError naming the place, never a deep traceback."""

from __future__ import annotations

import shutil
import warnings

import pandas as pd
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import bayespref as bp
from bayespref.data import CHOICES, DataError, DataWarning, load_choice_data, read_comparisons

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


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
