"""Figures of a fit and of stated ratings, each a function of plain arrays and tables returning a
matplotlib Figure, drawn without pyplot so that no backend is switched for the user."""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

LABELLED_TASKS = 60  # above this many tasks the ranking shows no per-task labels


def plain(name: object) -> str:
    """A task, dataset, condition or model name as literal text: matplotlib would read a pair of
    `$` in it as mathtext (and fail on unknown symbols)."""
    return str(name).replace("$", r"\$")


def _plain_all(names) -> list[str]:
    return [plain(name) for name in names]


def dataset_colours(datasets: list[str]) -> dict[str, tuple]:
    cmap = matplotlib.colormaps["tab10" if len(datasets) <= 10 else "tab20"]
    return {name: cmap(index % cmap.N) for index, name in enumerate(datasets)}


def _legend(ax, colours: dict[str, tuple]) -> None:
    for name, colour in colours.items():
        ax.plot([], [], "o", color=colour, label=plain(name))
    ax.legend(fontsize=8, loc="best")


def utilities_by_dataset(
    dataset_means: dict[str, np.ndarray], utilities: pd.DataFrame, colours: dict
) -> Figure:
    """Posterior of each dataset mean (violin) with the tasks' posterior means as points."""
    names = list(colours)
    fig = Figure(figsize=(max(5, 1.2 * len(names) + 2), 4))
    ax = fig.subplots()
    positions = np.arange(len(names))
    if dataset_means:
        parts = ax.violinplot([dataset_means[n] for n in names], positions, showmeans=True)
        for body, name in zip(parts["bodies"], names, strict=True):
            body.set_facecolor(colours[name])
    rng = np.random.default_rng(0)
    for index, name in enumerate(names):
        mu = utilities.loc[utilities["dataset"] == name, "mu_mean"].to_numpy()
        jitter = rng.uniform(-0.15, 0.15, len(mu))
        ax.scatter(index + jitter, mu, s=8, color=colours[name], alpha=0.6, edgecolor="none")
    ax.set_xticks(positions, _plain_all(names), rotation=30, ha="right")
    ax.set_ylabel("utility (units of noise)")
    ax.set_title("Dataset means (posterior) and task utilities (points)")
    fig.tight_layout()
    return fig


def ranked_utilities(utilities: pd.DataFrame, colours: dict) -> Figure:
    """Every task ranked by posterior mean utility with its 94% interval, coloured by dataset."""
    table = utilities.sort_values("mu_mean").reset_index(drop=True)
    n = len(table)
    labelled = n <= LABELLED_TASKS
    fig = Figure(figsize=(7, max(4, 0.16 * n) if labelled else 8))
    ax = fig.subplots()
    colour = [colours[d] for d in table["dataset"]]
    width = 1.0 if n <= 200 else 0.4
    ax.hlines(np.arange(n), table["mu_low"], table["mu_high"], colors=colour, linewidth=width)
    ax.scatter(table["mu_mean"], np.arange(n), c=colour, s=6 if labelled else 1, zorder=3)
    if labelled:
        ax.set_yticks(np.arange(n), _plain_all(table["task_id"]), fontsize=6)
    else:
        ax.set_ylabel(f"rank among {n} tasks")
    ax.set_xlabel("utility, posterior mean and 94% interval")
    ax.set_title("Tasks ranked by utility")
    _legend(ax, colours)
    fig.tight_layout()
    return fig


def noise(utilities: pd.DataFrame, sigma_dataset: dict[str, np.ndarray], colours: dict) -> Figure:
    """Noise sigma by dataset (posterior) and each task's sigma against its utility."""
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    names = list(colours)
    if sigma_dataset:
        parts = left.violinplot([sigma_dataset[n] for n in names], showmeans=True)
        for body, name in zip(parts["bodies"], names, strict=True):
            body.set_facecolor(colours[name])
        left.set_xticks(np.arange(1, len(names) + 1), _plain_all(names), rotation=30, ha="right")
        left.set_title("Noise sigma by dataset")
    else:
        left.text(0.5, 0.5, "noise is shared (sigma = 1)", ha="center", transform=left.transAxes)
        left.set_axis_off()
    right.scatter(
        utilities["mu_mean"],
        utilities["sigma_mean"],
        c=[colours[d] for d in utilities["dataset"]],
        s=8,
    )
    right.set_xlabel("utility (posterior mean)")
    right.set_ylabel("sigma (posterior mean)")
    right.set_title("Noise against utility")
    fig.tight_layout()
    return fig


def position(bias: dict[str, np.ndarray], rates: pd.DataFrame, ppc: pd.DataFrame | None) -> Figure:
    """Position bias posterior (an empty `bias`: no position term); observed first-position win
    rates (Wilson 94%) overall and within each dataset; observed statistics against their
    replicated 94% intervals."""
    fig = Figure(figsize=(15, 4))
    axes = fig.subplots(1, 3)
    for name, values in bias.items():
        axes[0].hist(values, bins=40, alpha=0.6, label=plain(name), density=True)
    axes[0].axvline(0, color="grey", linewidth=0.8)
    axes[0].set_title("Position bias (positive favours first)")
    if bias:
        axes[0].legend(fontsize=8)
    else:
        axes[0].text(0.5, 0.5, "no position term", ha="center", transform=axes[0].transAxes)
    y = np.arange(len(rates))
    axes[1].errorbar(
        rates["rate"],
        y,
        xerr=[rates["rate"] - rates["low"], rates["high"] - rates["rate"]],
        fmt="o",
    )
    axes[1].axvline(0.5, color="grey", linewidth=0.8)
    axes[1].set_yticks(y, _plain_all(rates["group"]))
    axes[1].set_title("First-position win rate (observed, within dataset)")
    _ppc_panel(axes[2], ppc)
    fig.tight_layout()
    return fig


def _ppc_panel(ax, ppc: pd.DataFrame | None, title: str = "Posterior predictive checks") -> None:
    if ppc is None or ppc.empty:
        ax.set_axis_off()
        return
    y = np.arange(len(ppc))
    ax.hlines(
        y,
        ppc["replicated_low"],
        ppc["replicated_high"],
        color="tab:blue",
        linewidth=4,
        alpha=0.4,
        label="replicated 94%",
    )
    ax.scatter(ppc["observed"], y, color="black", zorder=3, s=14, label="observed")
    ax.set_yticks(y, _plain_all(ppc["statistic"]), fontsize=7)
    ax.set_title(title)
    ax.legend(fontsize=8)


def position_replicated(table: pd.DataFrame) -> Figure:
    """First-shown win rates, observed against their replicated 94% intervals: per dataset of
    the first-shown task, and per ordered dataset pair (checks/ppc.py: position_rate_checks)."""
    by_first = table[table["second_dataset"] == "all"]
    by_pair = table[table["second_dataset"] != "all"]
    fig = Figure(figsize=(12, 2 + 0.22 * max(len(by_pair), len(by_first))))
    axes = fig.subplots(1, 2)
    for ax, part, title, labels in (
        (axes[0], by_first, "By dataset of the first-shown task", by_first["first_dataset"]),
        (
            axes[1],
            by_pair,
            "By ordered dataset pair (first, then second)",
            by_pair["first_dataset"] + ", then " + by_pair["second_dataset"],
        ),
    ):
        _ppc_panel(ax, part.assign(statistic=labels.to_numpy()).iloc[::-1], title)
        ax.axvline(0.5, color="grey", linewidth=0.8)
        ax.set_xlabel("first-shown win rate")
    fig.tight_layout()
    return fig


def refusal(
    table: pd.DataFrame, colours: dict, correlation: dict | None, modelled: pd.Series | None
) -> Figure:
    """Observed refusal rate of each task against its utility, with the correlations in the
    title: over posterior draws (observed rates) and, when modelled, the model's."""
    fig = Figure(figsize=(7, 4.5))
    ax = fig.subplots()
    ax.scatter(table["mu_mean"], table["rate"], c=[colours[d] for d in table["dataset"]], s=10)
    ax.set_xlabel("utility (posterior mean)")
    ax.set_ylabel("observed refusal rate")
    lines = []
    if correlation is not None:
        lines.append(
            f"r(rate, utility) = {correlation['mean']:.2f} "
            f"[{correlation['low']:.2f}, {correlation['high']:.2f}]"
        )
    if modelled is not None:
        low, high = modelled["low"], modelled["high"]
        lines.append(f"modelled corr = {modelled['mean']:.2f} [{low:.2f}, {high:.2f}]")
    ax.set_title("Refusal rate against utility\n" + "; ".join(lines), fontsize=10)
    _legend(ax, colours)
    fig.tight_layout()
    return fig


def condition_shifts(shifts: pd.DataFrame) -> Figure:
    """Condition shift per dataset (params rows `condition_shift[c, d]`), mean and 94% interval."""
    fig = Figure(figsize=(7, max(3, 0.35 * len(shifts) + 1)))
    ax = fig.subplots()
    y = np.arange(len(shifts))
    ax.errorbar(
        shifts["mean"],
        y,
        xerr=[shifts["mean"] - shifts["low"], shifts["high"] - shifts["mean"]],
        fmt="o",
    )
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_yticks(y, _plain_all(shifts["name"]), fontsize=8)
    ax.set_xlabel("shift of utility against the reference condition")
    ax.set_title("Condition shifts by dataset (read relative to each other)")
    fig.tight_layout()
    return fig


def discrimination_plot(summary: pd.DataFrame) -> Figure:
    """KL from uniform against ICC(1), one point per model and template; protocols that
    discriminate between tasks sit to the right (high ICC). Undefined ICCs are drawn at 0 as
    open markers."""
    fig = Figure(figsize=(7, 5))
    ax = fig.subplots()
    defined = summary["icc1"].notna()
    ax.scatter(summary.loc[defined, "icc1"], summary.loc[defined, "kl_from_uniform"], s=30)
    ax.scatter(
        np.zeros((~defined).sum()),
        summary.loc[~defined, "kl_from_uniform"],
        s=30,
        facecolors="none",
        edgecolors="tab:red",
        label="ICC undefined",
    )
    for _, row in summary.iterrows():
        x = row["icc1"] if np.isfinite(row["icc1"]) else 0.0
        label = plain(f"{row['model']} / {row['template']}")
        ax.annotate(label, (x, row["kl_from_uniform"]), fontsize=7)
    ax.set_xlabel("ICC(1) across resamples (between-task share of variance)")
    ax.set_ylabel("KL(ratings || uniform over the scale), nats")
    ax.set_title("Discrimination of stated-rating protocols")
    if (~defined).any():
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
