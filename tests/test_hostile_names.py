"""Hostile names and cells: control characters in ids, `$` in names, huge rating scales, and the
smaller validation gaps of tables, each refused (or drawn) with the file, row and column."""

from __future__ import annotations

import json
import shutil
import time
import warnings

import pandas as pd
import pytest
import xarray as xr
from typer.testing import CliRunner

from bayespref.analysis.prediction import predict
from bayespref.analysis.ratings import read_ratings
from bayespref.cli.app import app
from bayespref.data.comparisons import read_comparisons, read_tasks
from bayespref.errors import DataError, DataWarning
from bayespref.io.tables import read_table
from bayespref.report import figures, html

runner = CliRunner()
MATH = r"$\notasymbol$"  # matplotlib's mathtext fails on it: "Unknown symbol"


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def read_quietly(path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return read_comparisons(path)


@pytest.mark.parametrize("character", ["\x00", "\t", "\x1b", "\x7f"])
def test_control_characters_in_ids_are_refused_with_their_place(tmp_path, character):
    path = tmp_path / "c.csv"
    pd.DataFrame({"task_a": ["x", f"y{character}z"], "task_b": ["y", "x"], "choice": "a"}).to_csv(
        path, index=False
    )
    with pytest.raises(
        DataError, match=rf"'{path}', row 2 \(line 3\), column 'task_a': .*control character U\+"
    ):
        read_quietly(path)
    tasks = tmp_path / "tasks.csv"
    tasks.write_text("task_id,dataset\nx,d\ny,d\x00\n")
    with pytest.raises(DataError, match=r"row 2 \(line 3\), column 'dataset': .*U\+0000"):
        read_tasks(tasks)
    result = invoke("fit", path, "--out", tmp_path / "out")
    assert result.exit_code == 2 and "control character" in result.output
    assert not (tmp_path / "out").exists()


def test_a_nul_in_a_ratings_task_id_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("task_id,rating,scale\nx,1,1-5\n\x00y,2,1-5\n")
    with pytest.raises(DataError, match=r"row 2 \(line 3\), column 'task_id': .*U\+0000"):
        read_ratings(path)


def test_an_empty_task_id_in_ratings_is_refused(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("task_id,rating,scale\nx,1,1-5\n ,2,1-5\n")
    with pytest.raises(DataError, match=rf"'{path}', row 2 \(line 3\), column 'task_id': empty"):
        read_ratings(path)


@pytest.mark.parametrize("scale", ["1-300000000", "1-100000000000", "0-99999999999999999999"])
def test_a_huge_ratings_scale_is_refused_without_listing_it(tmp_path, scale):
    path = tmp_path / "r.csv"
    path.write_text(f"task_id,rating,scale\nx,1,1-5\ny,2,{scale}\n")
    started = time.perf_counter()
    with pytest.raises(DataError, match=rf"'{path}', row 2 \(line 3\), column 'scale': scale"):
        read_ratings(path)
    assert time.perf_counter() - started < 5


def test_a_bad_ratings_scale_names_its_file(tmp_path):
    path = tmp_path / "r.jsonl"
    path.write_text('{"task_id": "x", "rating": 1, "scale": "one to five"}\n')
    with pytest.raises(DataError, match=rf"'{path}', row 1, column 'scale': scale 'one to five'"):
        read_ratings(path)


def test_names_with_dollars_are_drawn_as_text(small_fit_dir, tmp_path):
    fit_dir = tmp_path / "fit"
    shutil.copytree(small_fit_dir, fit_dir)
    with xr.open_datatree(fit_dir / "posterior.nc", engine="h5netcdf") as stored:
        tree = stored.load()
    old = json.loads(tree.attrs["datasets"])
    new = [MATH, "$x$ and $y$"][: len(old)]
    tree.attrs["datasets"] = json.dumps(new)
    tree.to_netcdf(fit_dir / "posterior.nc", engine="h5netcdf")
    utilities = pd.read_csv(fit_dir / "utilities.csv", keep_default_na=False)
    utilities["dataset"] = utilities["dataset"].map(dict(zip(old, new, strict=True)))
    utilities.to_csv(fit_dir / "utilities.csv", index=False)
    result = invoke("report", fit_dir, "--out", tmp_path / "r.html")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r_files" / "utilities-by-dataset.png").exists()
    ranked = pd.DataFrame(
        {"task_id": [MATH, "b"], "dataset": "d", "mu_mean": [0, 1], "mu_low": -1, "mu_high": 2}
    )
    html.figure_png(figures.ranked_utilities(ranked, figures.dataset_colours(["d"])))


def test_a_failed_report_leaves_no_figures_folder(small_fit_dir, tmp_path, monkeypatch):
    def broken(*args):
        raise ValueError("drawing failed")

    monkeypatch.setattr(figures, "ranked_utilities", broken)
    with pytest.raises(ValueError, match="drawing failed"):
        html.report(small_fit_dir, tmp_path / "r.html")
    assert list(tmp_path.iterdir()) == []


def test_ratings_with_dollars_in_model_names_are_analysed(tmp_path):
    path = tmp_path / "r.csv"
    rows = [(f"t{i % 4}", 1 + i % 5, "1-5", MATH, "$a$") for i in range(20)]
    pd.DataFrame(rows, columns=["task_id", "rating", "scale", "model", "template"]).to_csv(
        path, index=False
    )
    result = invoke("ratings", "analyze", path, "--out", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "out" / "discrimination.png").exists()


def test_a_broken_jsonl_line_is_named_by_row(tmp_path):
    path = tmp_path / "c.jsonl"
    line = '{"task_a": "x", "task_b": "y", "choice": "a"}'
    path.write_text(f'{line}\n\n{line}\n{{"task_a": "x",\n{line}\n')
    with pytest.raises(DataError, match=rf"'{path}', row 3: line 4 is not valid JSON"):
        read_table(path)


def test_an_extra_field_on_the_first_csv_row_is_refused_at_that_row(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("task_a,task_b,choice\nx,y,a,extra\ny,x,b\n")
    with pytest.raises(DataError, match=r"row 1 \(line 2\): 4 fields, but the header names 3"):
        read_table(path)
    path.write_text("task_a,task_b,choice\nx,y,a\ny,x,b\nx,y,a,extra\n")
    with pytest.raises(DataError, match=r"row 3 \(line 4\): 4 fields, but the header names 3"):
        read_table(path)


@pytest.mark.parametrize("header", ["task_a,task_b,choice,choice", "task_a,task_b,choice, choice"])
def test_a_duplicated_header_is_refused(tmp_path, header):
    path = tmp_path / "c.csv"
    path.write_text(f"{header}\nx,y,a,b\n")
    with pytest.raises(DataError, match=r"column 'choice': the header names this column twice"):
        read_quietly(path)


def test_predict_refuses_a_task_paired_with_itself(small_fit_dir, small_simulation):
    task = small_simulation.tasks["task_id"].iloc[0]
    pairs = pd.DataFrame({"task_a": [task], "task_b": [task]})
    with pytest.raises(DataError, match=rf"row 1, column 'task_b': task '{task}' is paired"):
        predict(small_fit_dir, pairs)


def test_predict_refuses_an_unknown_condition_on_a_fit_without_conditions(
    small_fit_dir, small_simulation
):
    a, b = small_simulation.tasks["task_id"].iloc[:2]
    pairs = pd.DataFrame({"task_a": [a, a], "task_b": [b, b], "condition": ["default", "nope"]})
    with pytest.raises(DataError, match=r"row 2, column 'condition': condition 'nope' is not"):
        predict(small_fit_dir, pairs)
    assert len(predict(small_fit_dir, pairs.iloc[:1])) == 1


@pytest.mark.parametrize(
    "setting",
    [
        ("--batch-size", "0"),
        ("--samples", "0"),
        ("--concurrency", "0"),
        ("--micro-batch", "0"),
        ("--tensor-parallel-size", "0"),
        ("--retries", "-1"),
    ],
)
@pytest.mark.parametrize("command", ["collect", "complete"])
def test_counts_below_their_minimum_are_refused_before_anything_runs(tmp_path, command, setting):
    out = tmp_path / "run"
    result = invoke(command, "--engine", "openai", "--tasks", "shipped", "--model", "m",
                    "--out", out, *setting)  # fmt: skip
    assert result.exit_code == 2
    assert f"Invalid value for '{setting[0]}'" in result.output
    assert not out.exists()
