"""The HTML report: sections, embedded figures, files beside it, the CLI, and a headless browser."""

from __future__ import annotations

import base64
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import bayespref as bp
from bayespref.cli.app import app
from bayespref.report import figures as plots
from bayespref.report.html import SECTIONS, report

PNG = b"\x89PNG\r\n\x1a\n"
ALWAYS = ["utilities-by-dataset", "ranked-utilities", "noise", "position", "position-replicated"]
ALWAYS += ["refusal", "diagnostics", "spec"]


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self.images: list[dict] = []

    def handle_starttag(self, tag, attrs) -> None:
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs)


def parse(path) -> _Page:
    page = _Page()
    page.feed(path.read_text(encoding="utf-8"))
    return page


def assert_embedded(page: _Page) -> None:
    assert page.images
    for image in page.images:
        prefix = "data:image/png;base64,"
        assert image["src"].startswith(prefix)
        assert base64.b64decode(image["src"][len(prefix) :]).startswith(PNG)


@pytest.fixture(scope="module")
def refusal_conditions_fit_dir(tmp_path_factory):
    """One small fit with modelled refusals, condition shifts and per-dataset position."""
    sim = bp.simulate(
        n_tasks=24,
        n_datasets=2,
        n_comparisons=500,
        repeats=2,
        position_bias=-0.2,
        refusal_rate=0.1,
        condition_shifts=((0.5, -0.5),),
        seed=5,
    )
    spec = bp.ModelSpec(
        name="refusal-conditions", refusal="modelled", conditions="shifts", position="per-dataset"
    )
    out = tmp_path_factory.mktemp("report") / "fit"
    settings = bp.SamplerSettings(chains=2, draws=100, tune=100, seed=2)
    bp.fit(sim.comparisons, sim.tasks, model=spec, settings=settings, out=out, progressbar=False)
    return out


@pytest.fixture(scope="module")
def small_report(small_fit_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("small-report") / "report.html"
    report(small_fit_dir, out)
    return out


def test_report_of_the_default_model_is_self_contained(small_report, small_fit_dir):
    page = parse(small_report)
    assert page.sections == ALWAYS  # no condition shifts without the term
    assert_embedded(page)
    files = small_report.parent / "report_files"
    for key in ALWAYS[:6]:
        assert (files / f"{key}.png").read_bytes().startswith(PNG)
    text = small_report.read_text(encoding="utf-8")
    assert "http://" not in text and "https://" not in text  # opens offline
    assert "max_r_hat" in text and "&quot;refusal&quot;: &quot;excluded&quot;" in text
    rates = pd.read_csv(files / "position_win_rates.csv")
    assert rates["group"].iloc[0] == "all" and rates["trials"].iloc[0] > 0
    replicated = pd.read_csv(files / "position_ppc.csv")
    assert len(replicated) == 2 + 4  # two datasets first, four ordered pairs
    assert replicated["trials"].iloc[:2].sum() == rates["trials"].iloc[0]
    assert "second_dataset" in text  # the table is on the page too
    noise = pd.read_csv(files / "noise_by_dataset.csv")
    params = bp.load_fit(small_fit_dir).params.set_index("name")
    for row in noise.itertuples():
        named = params.loc[f"sigma_dataset[{row.dataset}]"]
        assert (row.sigma_mean, row.sigma_low, row.sigma_high) == pytest.approx(
            (named["mean"], named["low"], named["high"])
        )
    assert "sigma_mean" in text and "lapse_mean" not in text


def test_report_shows_modelled_refusals_and_condition_shifts(refusal_conditions_fit_dir, tmp_path):
    out = tmp_path / "deep" / "fit.html"
    files = report(refusal_conditions_fit_dir, out)
    page = parse(out)
    assert page.sections == ALWAYS[:6] + ["condition-shifts"] + ALWAYS[6:]
    assert set(SECTIONS) == set(page.sections)
    assert_embedded(page)
    assert files == tmp_path / "deep" / "fit_files"
    assert (files / "condition-shifts.png").exists()
    text = out.read_text(encoding="utf-8")
    assert "condition_shift[condition_1, dataset_0]" in text
    correlation = pd.read_csv(files / "refusal_utility_corr.csv").iloc[0]
    assert -1 <= correlation["low"] <= correlation["mean"] <= correlation["high"] <= 1
    assert not list(out.parent.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_ranking_stays_readable_with_thousands_of_tasks():
    n = 1200
    rng = np.random.default_rng(0)
    mu = rng.normal(size=n)
    utilities = pd.DataFrame(
        {
            "task_id": [f"t{i}" for i in range(n)],
            "dataset": np.where(np.arange(n) % 2, "a", "b"),
            "mu_mean": mu,
            "mu_low": mu - 0.5,
            "mu_high": mu + 0.5,
        }
    )
    figure = plots.ranked_utilities(utilities, plots.dataset_colours(["a", "b"]))
    assert not [
        t.get_text() for t in figure.axes[0].get_yticklabels() if t.get_text().startswith("t")
    ]
    assert figure.axes[0].collections[0].get_linewidth()[0] < 1


def test_report_command_writes_the_page_and_fails_with_exit_2(small_fit_dir, tmp_path):
    args = ["report", str(small_fit_dir), "--out", str(tmp_path / "r.html")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "r.html").exists() and (tmp_path / "r_files" / "noise.png").exists()
    missing = ["report", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")]
    result = CliRunner().invoke(app, missing)
    assert result.exit_code == 2 and "error:" in result.output


CHROMIUM = next(
    (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))), None
)


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary (apt-get install chromium)")
def test_report_renders_in_a_headless_browser(small_report, tmp_path):
    screenshot = tmp_path / "report.png"
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={screenshot}",
            "--window-size=1400,4000",
            small_report.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    data = screenshot.read_bytes()
    assert data.startswith(PNG) and len(data) > 50_000  # a blank page is a few kB
    from matplotlib.image import imread

    pixels = imread(screenshot)
    assert pixels.shape[:2] == (4000, 1400)
    assert pixels[..., :3].std() > 0.05  # not a single colour


def test_position_figure_says_when_the_model_has_no_position_term():
    rates = pd.DataFrame({"group": ["all"], "rate": [0.5], "low": [0.4], "high": [0.6]})
    figure = plots.position({}, rates, None)
    assert "no position term" in [text.get_text() for text in figure.axes[0].texts]


def test_page_shows_the_ordered_pairs_farthest_from_their_replicates():
    from bayespref.report.html import farthest_pairs

    names = [f"d{i}" for i in range(8)]
    rows = [(d, "all", 0.5) for d in names] + [(d, e, 0.5) for d in names for e in names]
    table = pd.DataFrame(rows, columns=["first_dataset", "second_dataset", "observed"]).assign(
        replicated_mean=0.5, replicated_low=0.45, replicated_high=0.55
    )
    table.loc[20, "observed"], table.loc[30, "observed"] = 0.9, 0.1  # two pairs far off
    shown = farthest_pairs(table, 10)
    assert (shown["second_dataset"] == "all").sum() == 8 and len(shown) == 18
    assert {20, 30} <= set(shown.index)
    assert farthest_pairs(table, 64) is table


def test_noise_by_dataset_gives_each_dataset_its_level_lapse_and_concentration_with_intervals():
    import xarray as xr

    from bayespref.analysis.summaries import noise_by_dataset

    draws = np.arange(1.0, 101.0).reshape(1, 100)  # one chain, draws 1..100
    posterior = xr.Dataset(
        {
            "sigma_dataset": (("chain", "draw", "dataset"), np.stack([draws, 2 * draws], -1)),
            "lapse_dataset": (("chain", "draw", "dataset"), np.stack([draws, draws], -1) / 1000),
            "dataset_spread": (("chain", "draw", "dataset"), np.stack([draws, draws], -1) * 3),
            "concentration_dataset": (("chain", "draw", "dataset"), np.stack([draws, -draws], -1)),
        },
        coords={"dataset": ["x", "y"]},
    )
    table = noise_by_dataset(posterior, ["x", "y"]).set_index("dataset")
    assert table.loc["y", "concentration_mean"] == -50.5
    assert table.loc["x", "sigma_mean"] == 50.5 and table.loc["y", "sigma_mean"] == 101.0
    assert table.loc["x", "sigma_low"] == pytest.approx(np.quantile(draws, 0.03))
    assert table.loc["y", "lapse_high"] == pytest.approx(np.quantile(draws, 0.97) / 1000)
    # spread over sigma is computed draw by draw: exactly 3 and 1.5 here
    assert table.loc["x", "spread_over_sigma_low"] == table.loc["x", "spread_over_sigma_high"] == 3
    assert table.loc["y", "spread_over_sigma_mean"] == pytest.approx(1.5)
    shared = xr.Dataset({"mu": (("chain", "draw", "task"), np.zeros((1, 3, 2)))})
    assert noise_by_dataset(shared, ["x"]).empty


def test_noise_note_gives_each_per_task_spread_with_its_interval():
    import xarray as xr

    from bayespref.report.html import task_spread_note

    draws = np.linspace(0.0, 1.0, 101).reshape(1, 101)
    posterior = xr.Dataset({"concentration_spread": (("chain", "draw"), draws)})
    note = task_spread_note(posterior)
    assert note.count("<p>") == 1
    assert "differ in log concentration by a spread" in note
    assert "of 0.50, 94% interval 0.03 to 0.97" in note
    assert task_spread_note(xr.Dataset({"dataset_spread": (("chain", "draw"), draws)})) == ""
