"""Figures that stay readable at the study's scale (hundreds of trials): one panel per
architecture (facets), colour by the swept value (a legend for a few values, a colour bar for
many), seeds as mean and spread, names only where they matter. ``plots.py`` picks these past
``draw.MAX_LEGEND`` trials, or for a sweep over several architectures; small sweeps keep
``draw.py``'s figures.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

from matplotlib.ticker import FuncFormatter, MaxNLocator

# draw sets matplotlib's Agg backend before pyplot loads: import pyplot through it
from evaluator.report.draw import PS_LABEL, _fmt_value, _save, _wrap, plt
from evaluator.report.stats import LOG_SPAN, natural_key, sort_key

MAX_VALUE_LEGEND = 10  # more swept values than this: a colour bar instead of a legend
MAX_GROUPS = 9  # top1_vs_ps colours this many architectures (the most trials), the rest grey
MAX_FRONTIER_NAMES = 8  # names on at most about this many frontier points
FACET_W, FACET_H = 3.4, 2.7  # inches per panel
MAX_FACET_COLS = 6  # more facets than this: several blocks of rows (14 in a row were unreadable)


def _plain() -> FuncFormatter:
    """Tick labels "0.1", "10", not mathtext's 10^-1, 10^1: as readable, and parsing mathtext
    cost 7% of a study's figures (one formatter per axis: matplotlib does not share them)."""
    return FuncFormatter(lambda v, _: f"{v:g}")


def value_colours(values: list[Any]) -> dict[str, Any]:
    """repr(value) -> colour, by rank in the values' order (a log grid spreads evenly)."""
    ordered = sorted({repr(v): v for v in values}.values(), key=sort_key)
    cmap = plt.get_cmap("viridis")
    n = max(len(ordered) - 1, 1)
    return {repr(v): cmap(0.92 * i / n) for i, v in enumerate(ordered)}


def _value_key(values: list[Any], fig: Any, axes: Any, label: str) -> None:
    """A legend of the swept values, or a colour bar (ticks: a few values) when many."""
    ordered = sorted({repr(v): v for v in values}.values(), key=sort_key)
    colours = value_colours(ordered)
    if len(ordered) <= MAX_VALUE_LEGEND:
        handles = [plt.Line2D([], [], color=colours[repr(v)], lw=2) for v in ordered]
        fig.legend(handles, [_fmt_value(v) for v in ordered], title=label, fontsize=8,
                   title_fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5),
                   frameon=False)  # fmt: skip
        return
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    sm = ScalarMappable(norm=Normalize(0, 0.92 * (len(ordered) - 1)), cmap="viridis")
    bar = fig.colorbar(sm, ax=axes, fraction=0.025, pad=0.02)
    step = max(1, math.ceil(len(ordered) / 8))
    ticks = list(range(0, len(ordered), step))
    bar.set_ticks([0.92 * i for i in ticks], labels=[_fmt_value(ordered[i]) for i in ticks])
    bar.set_label(label, fontsize=8)


def _grid(n_facets: int, n_rows: int) -> tuple[Any, Any]:
    fig, axes = plt.subplots(n_rows, n_facets, figsize=(FACET_W * n_facets + 1.5,
                             FACET_H * n_rows + 0.9), squeeze=False)  # fmt: skip
    for ax in axes.flat:  # at most 5 y ticks a small panel: enough to read, and tick labels
        ax.yaxis.set_major_locator(MaxNLocator(4))  # are most of a figure's drawing time
    return fig, axes


def _band(ax: Any, pts: list[tuple[float, float, float]], colour: Any, marker: str) -> None:
    xs, ys, sd = [p[0] for p in pts], [p[1] for p in pts], [p[2] for p in pts]
    ax.plot(xs, ys, color=colour, lw=1.4, marker=marker, ms=3)
    if any(s > 0 for s in sd):
        lo = [y - s for y, s in zip(ys, sd, strict=True)]
        hi = [y + s for y, s in zip(ys, sd, strict=True)]
        ax.fill_between(xs, lo, hi, color=colour, alpha=0.18, lw=0)


def facet_lines(
    path: Path,
    facets: list[dict[str, Any]],
    panels: list[tuple[str, str]],
    title: str,
    xlabel: str,
    value_label: str,
    xticks: list[str] | None = None,
) -> None:
    """One column per facet (architecture), one row per panel (``("ps", label)``,
    ``("top1", label)``), one line per swept value: mean over seeds, band = std; x on a log
    scale when it spans LOG_SPAN x (epochs from a fraction of one to 90).

    ``facets``: ``[{"label", "lines": [{"value", "seeds", "ps": [(x, mean, std)], ...}]}]``.
    """
    cols = min(len(facets), MAX_FACET_COLS)  # more facets: blocks of rows, one under another
    blocks = math.ceil(len(facets) / cols)
    fig, grid = _grid(cols, len(panels) * blocks)
    for j in range(len(facets), cols * blocks):  # the last block's empty places
        for i in range(len(panels)):
            fig.delaxes(grid[(blocks - 1) * len(panels) + i][j % cols])
    axes = [[grid[(j // cols) * len(panels) + i][j % cols] for j in range(len(facets))]
            for i in range(len(panels))]  # fmt: skip
    values = [ln["value"] for f in facets for ln in f["lines"]]
    xs = [p[0] for f in facets for ln in f["lines"] for p in ln.get(panels[0][0], [])]
    log_x = not xticks and bool(xs) and min(xs) > 0 and max(xs) / min(xs) >= LOG_SPAN
    colours = value_colours(values)
    for j, f in enumerate(facets):
        for i, (y, ylabel) in enumerate(panels):
            ax = axes[i][j]
            for ln in sorted(f["lines"], key=lambda ln: sort_key(ln["value"])):
                pts = sorted(p for p in ln.get(y, []) if p[1] is not None)
                if pts:
                    _band(ax, pts, colours[repr(ln["value"])], "" if len(pts) > 20 else "o")
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if log_x:  # training from a fraction of an epoch to 90 or 300: early steps matter
                ax.set_xscale("log")
                ax.minorticks_off()  # (their labels' extents are most of tight_layout's time)
                ax.xaxis.set_major_formatter(_plain())
            if xticks:
                ax.set_xticks(range(len(xticks)), xticks, rotation=45, fontsize=7)
            if i == 0:
                seeds = max((ln.get("seeds", 1) for ln in f["lines"]), default=1)
                ax.set_title(f["label"] + (f" ({seeds} seeds)" if seeds > 1 else ""), fontsize=9)
            if j % cols == 0:
                ax.set_ylabel(ylabel, fontsize=8)
            if i == len(panels) - 1:
                ax.set_xlabel(xlabel, fontsize=8)
    fig.suptitle(_wrap(title, 40 * cols + 40), fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.4 / fig.get_figheight()))  # room for the title
    _value_key(values, fig, [ax for row in axes for ax in row], value_label)
    _save(fig, path)


def study_axis(
    path: Path,
    key: str,
    series: list[dict[str, Any]],
    scale: str,
    title: str,
    top1_label: str,
) -> None:
    """The study's layout for one axis: a row of panels, one per architecture, x the swept
    value; PS on top, top-1 below; mean ± std over seeds (``plots.axis_series``' series)."""
    fig, axes = _grid(len(series), 2)
    for j, s in enumerate(series):
        agg = s["agg"]
        cats = scale == "categorical"
        xs = list(range(len(agg))) if cats else [float(g["x"]) for g in agg]
        for i, (y, colour, ylabel) in enumerate(
            (("ps", "#dd8452", PS_LABEL), ("top1", "#4c72b0", top1_label))
        ):
            ax = axes[i][j]
            pts = [(x, g[f"{y}_mean"], g[f"{y}_std"]) for x, g in zip(xs, agg, strict=True)]
            pts = [p for p in pts if p[1] is not None]
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts],
                        fmt="o-", color=colour, ms=4, lw=1.3, capsize=3)  # fmt: skip
            if pts and i == 0:
                k = max(range(len(pts)), key=lambda q: pts[q][1])
                ax.plot([pts[k][0]], [pts[k][1]], marker="*", ms=11, color="black", zorder=4)
            if scale in ("log", "symlog") and not cats:
                pos = [x for x in xs if x > 0]
                if scale == "log":
                    ax.set_xscale("log")
                elif pos:
                    ax.set_xscale("symlog", linthresh=min(pos), linscale=0.5)
                ax.minorticks_off()
                ax.xaxis.set_major_formatter(_plain())
            if cats or len(xs) <= 8:
                ax.set_xticks(xs, [_fmt_value(g["x"]) for g in agg], fontsize=7,
                              rotation=45 if len(xs) > 4 else 0)  # fmt: skip
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
            if i == 0:
                ax.set_title(s["label"] or "all trials", fontsize=9)
            else:
                ax.set_xlabel(key.rsplit(".", 1)[-1], fontsize=8)
            if j == 0:
                ax.set_ylabel(ylabel, fontsize=8)
    n = [g["n"] for s in series for g in s["agg"]]
    seeds = f"mean ± std over {max(n)} seeds" if n and max(n) > 1 else "one seed per value"
    fig.suptitle(_wrap(f"{title} ({seeds}; ★ best PS)", 40 * len(series) + 40), fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def scatter_many(
    path: Path,
    points: list[dict[str, Any]],
    frontier: list[int],
    named: list[int],
    references: dict[str, float],
    title: str,
    top1_label: str,
) -> None:
    """top1_vs_ps for many trials: colour by ``group`` (architecture), small points, the Pareto
    frontier as a step line, names only on the frontier and ``named`` (the best few by PS)."""
    fig, ax = plt.subplots(figsize=(9, 6))
    counts = Counter(p["group"] for p in points)
    # the MAX_GROUPS largest architectures in colour, the rest grey (a legend stays readable)
    shown = sorted((g for g, _ in counts.most_common(MAX_GROUPS)), key=natural_key)
    tab10 = plt.get_cmap("tab10")
    palette = [tab10(i) for i in range(10) if i != 7]  # tab10's grey is the "other" colour
    for gi, g in enumerate([*shown, None]):
        mine = [p for p in points if (p["group"] == g if g else p["group"] not in shown)]
        if mine:
            label = f"{g} ({len(mine)})" if g else f"other architectures ({len(mine)})"
            ax.scatter([p["top1"] for p in mine], [p["ps"] for p in mine], s=12, lw=0,
                       alpha=0.75 if g else 0.5, color=palette[gi] if g else "#b0b0b0",
                       label=label, zorder=3 if g else 2)  # fmt: skip
    if frontier:
        fx = [points[i]["top1"] for i in frontier]
        fy = [points[i]["ps"] for i in frontier]
        ax.step(fx, fy, where="post", color="black", lw=1.0, zorder=2)
        ax.scatter(fx, fy, s=40, facecolor="none", edgecolor="black", lw=0.9, zorder=4,
                   label="Pareto frontier (max top-1 and PS)")  # fmt: skip
    step = max(1, math.ceil(len(frontier) / MAX_FRONTIER_NAMES))  # every k-th frontier point
    label = set(frontier[::step]) | set(named)
    for k, i in enumerate(sorted(label, key=lambda i: points[i]["top1"])):
        ax.annotate(points[i]["label"], (points[i]["top1"], points[i]["ps"]), fontsize=6.5,
                    xytext=(4, 4 if k % 2 else -9), textcoords="offset points")  # fmt: skip
    for (name, v), ls in zip(references.items(), ["--", ":", "-."] * 3, strict=False):
        ax.axhline(v, color="grey", ls=ls, lw=1, label=f"{name}: {v:.1f}")
    ax.set_xlabel(top1_label)
    ax.set_ylabel(PS_LABEL)
    ax.set_title(_wrap(title + " (named: the best PS and points of the frontier)", 95),
                 fontsize=10)  # fmt: skip
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    _save(fig, path)
