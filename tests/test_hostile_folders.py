"""Hostile folders and files given to every command: one line `error: ...` naming the file, exit
code 2, no traceback, and nothing of the user's replaced or left half-written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pandas as pd
import pytest
from typer.testing import CliRunner

import bayespref as bp
from bayespref.cli.app import app
from bayespref.collect.store import RunStore
from bayespref.errors import CollectError, FitError
from bayespref.io import locking
from bayespref.posterior.fit import ensure_writable, load_fit

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_one_line_error(result, *fragments: str) -> str:
    """The shape every command's bad input must have; returns the error line."""
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def fit_copy(small_fit_dir, tmp_path):
    copy = tmp_path / "fit"
    shutil.copytree(small_fit_dir, copy)
    return copy


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory, small_simulation):
    return bp.write_simulation(small_simulation, tmp_path_factory.mktemp("sim") / "sim")


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


DAMAGE = {
    "truncated posterior": ("posterior.nc", _truncate),
    "empty posterior": ("posterior.nc", lambda path: path.write_bytes(b"")),
    "garbage posterior": ("posterior.nc", lambda path: path.write_bytes(b"\x89garbage" * 64)),
    "invalid diagnostics": ("diagnostics.json", lambda path: path.write_text("{not json")),
    "diagnostics of another shape": ("diagnostics.json", lambda path: path.write_text("[1, 2]")),
    "empty ppc": ("ppc.csv", lambda path: path.write_text("")),
    "utilities with wrong columns": ("utilities.csv", lambda path: path.write_text("a,b\n1,2\n")),
}


def _command(name, fit_dir, sim_dir, small_fit_dir, tmp_path):
    return {
        "predict": ["predict", fit_dir, sim_dir / "comparisons.csv", "--out", tmp_path / "p.csv"],
        "compare": ["compare", fit_dir, small_fit_dir, "--out", tmp_path / "c.csv"],
        "report": ["report", fit_dir, "--out", tmp_path / "r.html"],
        "select": ["select", fit_dir, "--budget", 2, "--out", tmp_path / "s.csv"],
    }[name]


@pytest.mark.parametrize("damage", list(DAMAGE))
@pytest.mark.parametrize("command", ["predict", "compare", "report", "select"])
def test_a_damaged_fit_folder_is_one_line_naming_the_file(
    fit_copy, sim_dir, small_fit_dir, tmp_path, command, damage
):
    name, spoil = DAMAGE[damage]
    spoil(fit_copy / name)
    result = invoke(*_command(command, fit_copy, sim_dir, small_fit_dir, tmp_path))
    assert_one_line_error(result, str(fit_copy / name))
    assert not (tmp_path / "r_files").exists()


def test_a_file_or_a_missing_folder_given_as_a_fit(sim_dir, tmp_path):
    result = invoke("report", sim_dir / "tasks.csv", "--out", tmp_path / "r.html")
    assert_one_line_error(result, "is a file, not a fit folder")
    result = invoke("select", tmp_path / "nothing", "--budget", 2, "--out", tmp_path / "s.csv")
    assert_one_line_error(result, "not a complete fit folder")


def test_fit_force_replaces_only_a_fit_folder(sim_dir, small_fit_dir, tmp_path):
    before = sorted(path.name for path in sim_dir.iterdir())
    result = invoke("fit", sim_dir / "comparisons.csv", "--out", sim_dir, "--force")
    assert_one_line_error(result, f"'{sim_dir}' is not a fit folder", "comparisons.csv")
    assert sorted(path.name for path in sim_dir.iterdir()) == before
    # Every file of a fit, plus one of the user's: refused too.
    mixed = tmp_path / "mixed"
    shutil.copytree(small_fit_dir, mixed)
    (mixed / "notes.txt").write_text("mine")
    with pytest.raises(FitError, match="it holds notes.txt"):
        ensure_writable(mixed, force=True)
    # A fit's file names without the format marker: refused.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "posterior.nc").write_bytes(b"not netcdf")
    with pytest.raises(FitError, match="no bayespref_format marker"):
        ensure_writable(fake, force=True)
    ensure_writable(small_fit_dir, force=True)  # a fit folder may be replaced
    (tmp_path / "empty").mkdir()
    ensure_writable(tmp_path / "empty", force=True)  # so may an empty folder


_KILL_BETWEEN_RENAMES = textwrap.dedent(
    """
    import os, pathlib, signal, sys
    import bayespref as bp

    rename = pathlib.Path.rename

    def rename_then_die(self, target):
        moved = rename(self, target)
        if ".replaced-" in str(target):  # the old fit is aside, the new one not yet in place
            os.kill(os.getpid(), signal.SIGKILL)
        return moved

    pathlib.Path.rename = rename_then_die
    bp.load_fit(sys.argv[1]).save(sys.argv[2], force=True)
    """
)


def test_a_kill_between_the_swap_renames_never_loses_the_old_fit(small_fit_dir, tmp_path):
    out = tmp_path / "fit"
    shutil.copytree(small_fit_dir, out)
    old = (out / "posterior.nc").read_bytes()
    (out / "utilities.csv").write_text((out / "utilities.csv").read_text() + "\n")  # marks it
    marked = (out / "utilities.csv").read_text()
    killed = subprocess.run(
        [sys.executable, "-c", _KILL_BETWEEN_RENAMES, str(small_fit_dir), str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    hidden = list(tmp_path.glob(".fit.replaced-*"))
    assert not out.exists() and len(hidden) == 1
    assert (hidden[0] / "posterior.nc").read_bytes() == old
    # Reading the fit says where it is; the next save restores it before anything else.
    with pytest.raises(FitError, match=r"left the previous fit in '.*\.fit\.replaced-"):
        load_fit(out)
    fresh = load_fit(small_fit_dir)
    with (
        pytest.warns(UserWarning, match="restored the fit"),
        pytest.raises(FitError, match="exists"),
    ):
        fresh.save(out)
    assert (out / "utilities.csv").read_text() == marked
    assert (out / "posterior.nc").read_bytes() == old
    fresh.save(out, force=True)  # and a save after that replaces it cleanly
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fit"]
    assert (out / "utilities.csv").read_text() != marked


def test_a_kill_after_the_swap_leaves_the_new_fit_and_the_old_is_cleared(small_fit_dir, tmp_path):
    out = tmp_path / "fit"
    shutil.copytree(small_fit_dir, out)
    shutil.copytree(small_fit_dir, tmp_path / ".fit.replaced-12345")  # killed before the rmtree
    load_fit(small_fit_dir).save(out, force=True)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["fit"]


def test_compare_refuses_the_same_fit_twice(small_fit_dir, tmp_path, monkeypatch):
    result = invoke("compare", small_fit_dir, small_fit_dir, "--out", tmp_path / "c.csv")
    assert_one_line_error(result, "are the same fit folder")
    monkeypatch.chdir(small_fit_dir.parent)
    name = small_fit_dir.name
    result = invoke("compare", name, f"./{name}", "--out", tmp_path / "c.csv")
    assert_one_line_error(result, f"'{name}' and '{name}' are the same fit folder")
    assert not (tmp_path / "c.csv").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["report", "{fit}", "--out", "{fit}/posterior.nc"],
        ["predict", "{fit}", "{sim}/comparisons.csv", "--out", "{fit}/utilities.csv"],
        ["select", "{fit}", "--budget", "2", "--out", "{fit}/params.csv"],
        ["compare", "{fit}", "{other}", "--out", "{fit}/ppc.csv"],
    ],
)
def test_no_output_replaces_a_file_of_a_fit(fit_copy, small_fit_dir, sim_dir, args):
    before = {path.name: path.read_bytes() for path in fit_copy.iterdir()}
    names = {"fit": fit_copy, "sim": sim_dir, "other": small_fit_dir}
    result = invoke(*(arg.format(**names) for arg in args))
    assert_one_line_error(result, "is a file of the fit folder")
    assert {path.name: path.read_bytes() for path in fit_copy.iterdir()} == before


def test_collect_never_overwrites_a_table_it_did_not_write(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "comparisons.parquet").write_bytes(b"the user's own table")
    with pytest.raises(CollectError, match="has no manifest.json, so it is not a collect run"):
        RunStore(folder).__enter__()
    with pytest.raises(CollectError, match="comparisons.parquet' exists"):
        RunStore(folder).read_manifest()
    assert sorted(path.name for path in folder.iterdir()) == ["comparisons.parquet"]
    simulated = tmp_path / "truth"
    assert (
        invoke(
            "simulate", "--tasks", 8, "--datasets", 2, "--comparisons", 20, "--out", simulated
        ).exit_code
        == 0
    )
    result = invoke("collect", "--engine", "simulated", "--truth", simulated, "--out", folder)
    assert_one_line_error(result, "has no manifest.json")
    assert (folder / "comparisons.parquet").read_bytes() == b"the user's own table"


def test_a_damaged_shard_names_its_file_and_line(tmp_path):
    with RunStore(tmp_path / "run") as store:
        store.append([{"key": "k1", "error": None}, {"key": "k2", "error": None}])
        shard = next(store.shards.glob("*.jsonl"))
        lines = shard.read_text().splitlines()
        shard.write_text(lines[0] + "\n" + lines[1][:-5] + "\n")
        with pytest.raises(CollectError, match=rf"shard '{shard}', line 2: not valid JSON"):
            store.records()
        shard.write_text(lines[0] + "\n" + json.dumps({"raw": "no key"}) + "\n")
        with pytest.raises(CollectError, match=rf"shard '{shard}', line 2: a record without"):
            store.records()


def test_an_output_under_a_file_is_one_line(fit_copy, sim_dir, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    comparisons = sim_dir / "comparisons.csv"
    for args in (
        ["fit", comparisons, "--out", afile / "sub"],
        ["simulate", "--tasks", 8, "--datasets", 2, "--comparisons", 20, "--out", afile / "sub"],
        ["predict", fit_copy, comparisons, "--out", afile / "sub" / "p.csv"],
        ["report", fit_copy, "--out", afile / "sub" / "r.html"],
        ["select", fit_copy, "--budget", 2, "--out", afile / "sub" / "s.csv"],
    ):
        assert_one_line_error(invoke(*args), f"'{afile}'", "is a file")
    assert afile.read_text() == "x"


def test_an_output_file_that_is_a_folder_is_one_line_and_leaves_no_temporary(
    fit_copy, sim_dir, tmp_path
):
    folder = tmp_path / "existing"
    folder.mkdir()
    comparisons = sim_dir / "comparisons.csv"
    result = invoke("predict", fit_copy, comparisons, "--out", folder)
    assert_one_line_error(result, f"'{folder}'", "is a folder")
    result = invoke("select", fit_copy, "--budget", 2, "--out", folder)
    assert_one_line_error(result, f"'{folder}'", "is a folder")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["existing", "fit"]
    assert list(folder.iterdir()) == []


def test_a_folder_given_as_an_input_file_is_one_line(fit_copy, tmp_path):
    folder = tmp_path / "input.csv"
    folder.mkdir()
    assert_one_line_error(
        invoke("fit", folder, "--out", tmp_path / "out"), f"'{folder}'", "is a folder"
    )
    assert_one_line_error(
        invoke("predict", fit_copy, folder, "--out", tmp_path / "p.csv"), "is a folder"
    )
    assert_one_line_error(invoke("ratings", "analyze", folder), f"'{folder}'", "is a folder")
    assert not (tmp_path / "out").exists()


def test_a_model_toml_that_is_not_utf8_is_one_line(sim_dir, tmp_path):
    model = tmp_path / "mine.toml"
    model.write_bytes(b"noise = 'per-task'\n# caf\xe9\n")
    result = invoke("fit", sim_dir / "comparisons.csv", "--out", tmp_path / "o", "--model", model)
    assert_one_line_error(result, str(model), "not UTF-8")


def test_an_unwritable_out_is_one_line(sim_dir, tmp_path, monkeypatch):
    # Root ignores permissions, so the read-only filesystem is simulated where the lock opens.
    real_open = os.open

    def read_only(path, *args, **kwargs):
        if str(path).endswith(".lock"):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(locking.os, "open", read_only)
    result = invoke("fit", sim_dir / "comparisons.csv", "--out", tmp_path / "f")
    assert_one_line_error(result, str(tmp_path / ".f.lock"), "Read-only file system")


def test_a_tasks_table_of_the_wrong_shape_is_one_line(sim_dir, tmp_path):
    tasks = tmp_path / "tasks.csv"
    pd.DataFrame({"task_id": ["x"], "dataset": ["d"], "extra": ["e"]}).to_csv(tasks, index=False)
    tasks.write_text("task_id,task_id\nx,y\n")
    result = invoke("fit", sim_dir / "comparisons.csv", "--tasks", tasks, "--out", tmp_path / "o")
    assert_one_line_error(result, str(tasks), "column 'task_id'", "twice")


def test_a_collect_run_with_a_damaged_shard_is_one_line(tmp_path):
    truth, out = tmp_path / "truth", tmp_path / "run"
    simulate = ["simulate", "--tasks", 8, "--datasets", 2, "--comparisons", 20, "--out", truth]
    assert invoke(*simulate).exit_code == 0
    collect = ["collect", "--engine", "simulated", "--truth", truth, "--out", out, "--degree", 2]
    assert invoke(*collect).exit_code == 0
    shard = next((out / "shards").glob("*.jsonl"))
    shard.write_text(shard.read_text() + '{"truncated": \n')
    lines = len(shard.read_text().splitlines())
    assert_one_line_error(invoke(*collect), f"shard '{shard}', line {lines}: not valid JSON")


def test_ratings_analyze_bad_files_are_one_line(small_fit_dir, tmp_path):
    ratings = tmp_path / "r.csv"
    ratings.write_text("task_id,rating,scale\nx,1,1-5\ny,2,1-99999999999\n")
    result = invoke("ratings", "analyze", ratings)
    assert_one_line_error(result, f"'{ratings}', row 2 (line 3), column 'scale'")
    rows = [(f"t{i % 4}", 1 + i % 5, "1-5") for i in range(20)]
    pd.DataFrame(rows, columns=["task_id", "rating", "scale"]).to_csv(ratings, index=False)
    utilities = tmp_path / "utilities.csv"
    utilities.write_text("task,mu\nt1,0.5\n")
    out = tmp_path / "analysis"
    result = invoke("ratings", "analyze", ratings, "--utilities", utilities, "--out", out)
    assert_one_line_error(result, f"'{utilities}', column 'task_id': required column missing")
    assert not out.exists()
