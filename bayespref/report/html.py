"""One self-contained HTML report of a fit folder, with its figures also written as PNG files.

The page embeds every figure as base64 PNG and needs no network. Beside it, `<name>_files/` holds
the same figures as PNG and the numbers behind them as CSV.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from bayespref.analysis import rates as analysis
from bayespref.analysis import summaries
from bayespref.checks.ppc import position_rate_checks
from bayespref.io.atomic import make_folder, write_atomically
from bayespref.io.tables import write_table
from bayespref.posterior import draws as post
from bayespref.posterior.fit import Fit, ensure_not_fit_file, load_fit
from bayespref.report import figures as plots

SECTIONS = {
    "utilities-by-dataset": "Utilities by dataset",
    "ranked-utilities": "All tasks ranked by utility",
    "noise": "Noise",
    "position": "Position bias",
    "position-replicated": "First-shown win rates: observed and replicated",
    "refusal": "Refusals and utility",
    "condition-shifts": "Condition shifts",
    "diagnostics": "Diagnostics",
    "spec": "Model spec",
}
MODELLED_CORR = "refusal_utility_corr_tasks"
SHOWN_PAIRS = 40  # ordered dataset pairs on the page; position_ppc.csv has them all
_STYLE = """
body { font-family: sans-serif; max-width: 1200px; margin: 2em auto; color: #222; }
img { max-width: 100%; border: 1px solid #ddd; }
table { border-collapse: collapse; font-size: 0.85em; }
td, th { border: 1px solid #ccc; padding: 2px 6px; text-align: right; }
pre { background: #f5f5f5; padding: 1em; overflow-x: auto; }
.fail { color: #b00; font-weight: bold; } .pass { color: #070; font-weight: bold; }
"""


@dataclass
class Section:
    key: str
    figure: Figure | None = None
    body: str = ""  # HTML placed under the figure


def report(fit_dir: str | Path, out: str | Path, refusal_rates: pd.DataFrame | None = None) -> Path:
    """Write the HTML report of the fit in `fit_dir` to `out`; returns the figures' folder, which
    a failed report does not leave behind (unless it was there before). `refusal_rates` (per
    task, from completions: `bayespref refusals`) replaces the refusals counted in the trials."""
    out = Path(out)
    ensure_not_fit_file(out)
    fit = load_fit(fit_dir)
    files = out.with_name(f"{out.stem}_files")
    created = not files.exists()
    make_folder(files)
    try:
        write_atomically(out, _page(fit, Path(fit_dir), files, refusal_rates))
    except Exception:
        if created:
            shutil.rmtree(files, ignore_errors=True)
        raise
    return files


def _page(fit: Fit, fit_dir: Path, files: Path, refusal_rates: pd.DataFrame | None) -> str:
    parts = []
    for section in build_sections(fit, files, refusal_rates):
        image = ""
        if section.figure is not None:
            image = _embed(section.figure, files / f"{section.key}.png")
        parts.append(
            f'<section id="{section.key}"><h2>{SECTIONS[section.key]}</h2>'
            f"{image}{section.body}</section>"
        )
    approximate = " (APPROXIMATE posterior)" if fit.diagnostics.approximate else ""
    title = html.escape(f"bayespref report: {fit_dir.name}{approximate}")
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>{_overview(fit)}"
        + "".join(parts)
        + "</body></html>\n"
    )


def build_sections(
    fit: Fit, files: Path, refusal_rates: pd.DataFrame | None = None
) -> list[Section]:
    """The report's sections in order; the numbers behind the figures are written to `files`."""
    utilities = reference_utilities(fit)
    colours = plots.dataset_colours(fit.datasets)
    sections = [
        Section(
            "utilities-by-dataset",
            plots.utilities_by_dataset(_by_dataset(fit, "dataset_mean"), utilities, colours),
        ),
        Section("ranked-utilities", plots.ranked_utilities(utilities, colours)),
        _noise_section(fit, utilities, colours, files),
        _position_section(fit, files),
        _position_replicated_section(fit, files),
        _refusal_section(fit, utilities, colours, files, refusal_rates),
    ]
    shifts = fit.params[fit.params["name"].str.startswith("condition_shift[")]
    if not shifts.empty:
        sections.append(Section("condition-shifts", plots.condition_shifts(shifts), _table(shifts)))
    sections.append(Section("diagnostics", body=_diagnostics(fit)))
    spec = json.dumps(json.loads(fit.idata.attrs["spec"]), indent=2)
    sections.append(Section("spec", body=f"<pre>{html.escape(spec)}</pre>"))
    return sections


def reference_utilities(fit: Fit) -> pd.DataFrame:
    """utilities.csv rows of the reference condition (all rows when conditions are pooled)."""
    table = fit.utilities
    if "condition" in table.columns:
        table = table[table["condition"] == fit.conditions[0]]
    return table.reset_index(drop=True)


def _by_dataset(fit: Fit, name: str) -> dict[str, np.ndarray]:
    if name not in fit.posterior:
        return {}
    return dict(zip(fit.datasets, post.draws(fit.posterior, name), strict=True))


def _noise_section(fit: Fit, utilities: pd.DataFrame, colours: dict, files: Path) -> Section:
    table = summaries.noise_by_dataset(fit.posterior, fit.datasets)
    figure = plots.noise(utilities, _by_dataset(fit, "sigma_dataset"), colours)
    if table.empty:
        return Section("noise", figure)
    write_table(table, files / "noise_by_dataset.csv")
    extras = [text for column, text in _NOISE_EXTRAS.items() if f"{column}_mean" in table]
    note = (
        "<p>By dataset, posterior mean and 94% interval: the noise sigma (utilities are in units "
        "of the geometric mean of the datasets' noise), the utility spread in units of the "
        "dataset's own noise (how deterministic choices within it are)"
        + "".join(f", {text}" for text in extras)
        + ". With nearly deterministic choices a dataset's noise trades off against its utility "
        "spread, so read noise differences with the README's noise section.</p>"
        + task_spread_note(fit.posterior)
    )
    return Section("noise", figure, note + _table(table))


_NOISE_EXTRAS = {
    "lapse": "the mean lapse rate of its tasks",
    "pair_sd": "the sd of pair effects shared by a pair's repeats (how far its pairs stray from "
    "the utility order)",
    "concentration": "the beta-binomial concentration kappa (small: a pair's repeats agree "
    "beyond their probability, so they count as fewer independent trials)",
}
# Per-task terms whose offsets around each dataset's level (log, logit for lapse) share one sd.
_TASK_SPREADS = {
    "sigma_spread": "log noise",
    "concentration_spread": "log concentration",
    "pair_sd_spread": "log pair-effect sd",
    "lapse_spread": "logit lapse rate",
}


def task_spread_note(posterior: xr.Dataset) -> str:
    """A paragraph per per-task term of the model: how much a dataset's tasks differ in it,
    with its interval; one that reaches near zero means the data do not show that they do."""
    parts = []
    for name, label in _TASK_SPREADS.items():
        if name in posterior:
            draws = post.draws(posterior, name)
            low, high = np.quantile(draws, summaries.INTERVAL_TAILS)
            parts.append(
                f"<p>Tasks within a dataset differ in {label} by a spread (the sd of their "
                f"offsets around its level) of {draws.mean():.2f}, 94% interval {low:.2f} to "
                f"{high:.2f}; where this "
                "interval nears zero the data do not show that a dataset's tasks differ, and "
                "no single task's value is resolved.</p>"
            )
    return "".join(parts)


def _position_section(fit: Fit, files: Path) -> Section:
    rates = analysis.position_win_rates(fit.cells)
    write_table(rates, files / "position_win_rates.csv")
    bias, scope = post.position(fit.posterior)
    if scope == "pair":  # the datasets' terms; the pairs' show in the next section's rates
        bias = post.draws(fit.posterior, "position_bias_dataset")
    named = {"global": bias} if scope == "global" else dict(zip(fit.datasets, bias, strict=True))
    if fit.spec.position == "none":
        named = {}
    return Section("position", plots.position(named, rates, fit.ppc), _table(rates))


def _position_replicated_section(fit: Fit, files: Path) -> Section:
    table = position_rate_checks(fit, fit.cells)
    write_table(table, files / "position_ppc.csv")
    shown = farthest_pairs(table, SHOWN_PAIRS)
    note = (
        "<p>Share of choice trials won by the first-shown task, per dataset of the first-shown "
        "task and per ordered pair of datasets, against the same share in choices replicated "
        "from the posterior given each cell's trial count (mean and 94% interval). Rates across "
        "datasets mix position with the datasets' utility gap; the model replicates both."
    )
    if len(shown) < len(table):
        note += (
            f" Shown: the {SHOWN_PAIRS} ordered pairs farthest from their replicates (in "
            "interval widths); all are in position_ppc.csv."
        )
    body = note + "</p>" + _table(shown)
    return Section("position-replicated", plots.position_replicated(shown), body)


def farthest_pairs(table: pd.DataFrame, limit: int) -> pd.DataFrame:
    """The rows per first-shown dataset and at most `limit` ordered-pair rows, those whose
    observed rate is farthest from the replicated mean in units of the interval's width."""
    pairs = table["second_dataset"] != "all"
    if pairs.sum() <= limit:
        return table
    width = (table["replicated_high"] - table["replicated_low"]).clip(lower=1e-9)
    distance = (table["observed"] - table["replicated_mean"]).abs() / width
    return table[~pairs | table.index.isin(distance[pairs].nlargest(limit).index)]


def _refusal_section(
    fit: Fit,
    utilities: pd.DataFrame,
    colours: dict,
    files: Path,
    from_completions: pd.DataFrame | None,
) -> Section:
    if from_completions is None:
        rates = analysis.refusal_rates(fit.task_counts)
        note = (
            f"<p>{int(rates['refusals'].sum())} refusals in {int(rates['offered'].sum()) // 2} "
            "trials offered. Each point is a task: refused trials over trials it was offered "
            "in.</p>"
        )
    else:
        rates = from_completions[["task_id", "rate", "low", "high"]]
        note = (
            "<p>Each point is a task: the share of its completions that refuse (from `bayespref "
            f"refusals`), for {len(rates)} tasks.</p>"
        )
    table = utilities[["task_id", "dataset", "mu_mean"]].merge(rates, on="task_id")
    write_table(table, files / "refusal_rates.csv")
    correlation = None
    if table["rate"].nunique(dropna=True) > 1:
        order = pd.Index(fit.tasks["task_id"]).get_indexer(table["task_id"])
        mu = post.draws(fit.posterior, "mu")[order]
        correlation = analysis.refusal_utility_correlation(table["rate"], mu)
        write_table(pd.DataFrame([correlation]), files / "refusal_utility_corr.csv")
    params = fit.params.set_index("name")
    modelled = params.loc[MODELLED_CORR] if MODELLED_CORR in params.index else None
    return Section("refusal", plots.refusal(table, colours, correlation, modelled), note)


def _diagnostics(fit: Fit) -> str:
    diagnostics = fit.diagnostics
    verdict = "pass" if diagnostics.passed else "fail"
    keys = ["max_r_hat", "min_ess_bulk", "divergences", "bfmi", "max_tree_depth", "reasons"]
    if diagnostics.approximate:
        keys = ["method", "optimizer_iterations", "max_abs_gradient", "reasons"]
    shown = diagnostics.to_dict()
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(shown[k]))}</td></tr>"
        for k in keys
        if k in shown
    )
    details = html.escape(json.dumps(shown, indent=2, default=str))
    return (
        f'<p class="{verdict}">{verdict}</p><table>{rows}</table>'
        f"<h3>Parameters</h3>{_table(fit.params)}"
        f"<details><summary>diagnostics.json</summary><pre>{details}</pre></details>"
    )


def _overview(fit: Fit) -> str:
    attrs = fit.idata.attrs
    data = fit.diagnostics.data
    refusals = "" if data is None else f"<p>Refusals: {html.escape(data.refusals)}.</p>"
    return (
        f"<p>Model <b>{html.escape(fit.spec.name)}</b>, {len(fit.tasks)} tasks in "
        f"{len(fit.datasets)} datasets, conditions: {html.escape(', '.join(fit.conditions))}. "
        f"Method: {html.escape(str(attrs.get('method', '')))}; data hash "
        f"{html.escape(str(attrs.get('data_hash', '')))}. Intervals are 94% equal-tailed.</p>"
        + refusals
    )


def _table(frame: pd.DataFrame) -> str:
    return frame.to_html(index=False, float_format=lambda value: f"{value:.3f}", border=0)


def figure_png(figure: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def save_figure(figure: Figure, path: str | Path) -> None:
    write_atomically(Path(path), figure_png(figure))


def _embed(figure: Figure, path: Path) -> str:
    """Save the figure as PNG to `path` and return an <img> carrying the same PNG as base64."""
    data = figure_png(figure)
    write_atomically(path, data)
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{path.stem}" src="data:image/png;base64,{encoded}">'
