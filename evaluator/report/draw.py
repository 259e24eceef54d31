"""Drawing the report's figures (matplotlib, Agg backend), each PNG written atomically.

``plots.py`` decides what each figure shows; the functions here only draw the series they get.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

from evaluator.report.stats import sort_key  # noqa: E402
from trainer.files import atomic_write  # noqa: E402

PS_LABEL = "Perceptual Score (% 2AFC agreement)"
DPI = 130
MAX_LEGEND = 24  # more trials than this: no per-trial legend, colour follows the sort order
MAX_LABELS = 30  # more trials than this: only frontier points carry their name
GROUP_LEGEND = 10  # more trials than this: one legend entry per grid point, not per seed


def _save(fig: Any, path: Path, dpi: int = DPI) -> None:
    buf = io.BytesIO()
    # zlib level 1: 7% quicker to draw a study's figures than the default 6, files 12% larger
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", pil_kwargs={"compress_level": 1})
    plt.close(fig)
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def _wrap(title: str, width: int = 85) -> str:
    return "\n".join(textwrap.wrap(title, width)) or title


def _colors(n: int) -> list:
    cmap = plt.get_cmap("viridis")
    return [cmap(0.9 * i / max(n - 1, 1)) for i in range(n)]


LINESTYLES = ("-", "--", ":", "-.")


def _styles(series: list[dict[str, Any]]) -> list[tuple[Any, Any]]:
    """(colour, line style) per series: one colour per ``group`` (a swept value, in order of
    appearance), a different line style for each series inside a group (its seeds)."""
    groups: dict[str, int] = {}
    for s in series:
        groups.setdefault(repr(s.get("group", s["label"])), len(groups))
    colors = _colors(len(groups))
    seen: dict[str, int] = {}
    out = []
    for s in series:
        g = repr(s.get("group", s["label"]))
        k = seen[g] = seen.get(g, -1) + 1
        out.append((colors[groups[g]], LINESTYLES[k % len(LINESTYLES)]))
    return out


def legend_labels(series: list[dict[str, Any]]) -> tuple[list[str | None], str, int]:
    """One legend entry per trial; past GROUP_LEGEND trials, one per colour (the grid point)
    when seeds share colours, which keeps the legend short."""
    groups: dict[str, str] = {}
    for s in series:
        groups.setdefault(repr(s.get("group", s["label"])), s.get("group_label") or s["label"])
    if len(series) <= GROUP_LEGEND or len(groups) == len(series):
        return [s["label"] for s in series], "trial", len(series)
    seen: set[str] = set()
    labels: list[str | None] = []
    for s in series:
        g = repr(s.get("group", s["label"]))
        labels.append(None if g in seen else groups[g])
        seen.add(g)
    return labels, "colour: grid point\nline style: seed", len(groups)


def _legend_outside(ax: Any, n: int, title: str | None = None) -> None:
    if n == 0 or n > MAX_LEGEND:
        return
    ax.legend(
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        fontsize=7 if n > 10 else 8,
        ncol=1 if n <= 16 else 2,
        title=title,
        title_fontsize=8,
        frameon=False,
    )


def _trial_line(ax: Any, pts: list, style: tuple[Any, Any], ms: float, label: str | None) -> None:
    """One trial's ``(x, y)`` points as a line with dots, in its ``(colour, linestyle)``."""
    if pts:
        ax.plot(
            [p[0] for p in pts],
            [p[1] for p in pts],
            marker="o",
            ls=style[1],
            color=style[0],
            ms=ms,
            lw=1.2,
            label=label,
        )


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _label_points(ax: Any, points: list[dict[str, Any]], which: list[int]) -> None:
    """Name each point; a label whose point sits close to an already labelled one goes below
    it instead of above, so neighbours (seeds of one value) stay readable."""
    xs = [points[i]["top1"] for i in which]
    ys = [points[i]["ps"] for i in which]
    dx = 0.06 * ((max(xs) - min(xs)) if xs else 1.0) or 1.0
    dy = 0.04 * ((max(ys) - min(ys)) if ys else 1.0) or 1.0
    placed: list[tuple[float, float, int]] = []
    for i in sorted(which, key=lambda i: (points[i]["top1"], points[i]["ps"])):
        x, y = points[i]["top1"], points[i]["ps"]
        near = [s for px, py, s in placed if abs(px - x) < dx and abs(py - y) < dy]
        below = bool(near) and near[-1] > 0
        placed.append((x, y, -1 if below else 1))
        ax.annotate(
            points[i]["label"],
            (x, y),
            xytext=(4, -10 if below else 4),
            textcoords="offset points",
            fontsize=7,
        )


def top1_vs_ps(
    path: Path,
    points: list[dict[str, Any]],
    frontier: list[int],
    references: dict[str, float],
    title: str,
    top1_label: str,
) -> None:
    """Scatter of top-1 vs PS, one point per trial, the Pareto frontier as a step line."""
    fig, ax = plt.subplots(figsize=(8, 5.5))
    on = set(frontier)
    xs = [p["top1"] for p in points]
    ys = [p["ps"] for p in points]
    off = [i for i in range(len(points)) if i not in on]
    if off:
        ax.scatter(
            [xs[i] for i in off],
            [ys[i] for i in off],
            s=36,
            color="#4c72b0",
            label="trial",
            zorder=3,
        )
    if frontier:
        fx, fy = [xs[i] for i in frontier], [ys[i] for i in frontier]
        ax.step(fx, fy, where="post", color="#dd8452", lw=1.5, zorder=2)
        ax.scatter(
            fx,
            fy,
            s=60,
            color="#dd8452",
            edgecolor="black",
            lw=0.6,
            zorder=4,
            label="Pareto frontier (max top-1 and PS)",
        )
    label_all = len(points) <= MAX_LABELS
    _label_points(ax, points, [i for i in range(len(points)) if label_all or i in on])
    styles = ["--", ":", "-.", (0, (5, 1)), (0, (1, 3)), (0, (3, 1, 1, 1))]
    for (name, v), ls in zip(references.items(), styles * 3, strict=False):
        ax.axhline(v, color="grey", ls=ls, lw=1, label=f"{name}: {v:.1f}")
    ax.set_xlabel(top1_label)
    ax.set_ylabel(PS_LABEL)
    ax.set_title(_wrap(title), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    _save(fig, path)


def axis_plot(
    path: Path,
    key: str,
    series: list[dict[str, Any]],
    scale: str,
    title: str,
    top1_label: str,
) -> None:
    """PS (top) and top-1 (bottom) against the swept value, mean +- std over seeds.

    ``series``: ``[{"label", "agg": stats.aggregate_over_seeds(...)}]``, one per model.
    """
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True)
    cats: list[Any] = []
    if scale == "categorical":
        seen = {repr(g["x"]): g["x"] for s in series for g in s["agg"]}
        cats = sorted(seen.values(), key=sort_key)
    pos = {repr(c): i for i, c in enumerate(cats)}
    single = len(series) == 1
    palette = plt.get_cmap("tab10")
    for si, s in enumerate(series):
        agg = s["agg"]
        xs = [pos[repr(g["x"])] if cats else float(g["x"]) for g in agg]
        for ax, y, default in ((a1, "ps", "#dd8452"), (a2, "top1", "#4c72b0")):
            pts = [(x, g[f"{y}_mean"], g[f"{y}_std"]) for x, g in zip(xs, agg, strict=True)]
            pts = [p for p in pts if p[1] is not None]
            if not pts:
                continue
            ax.errorbar(
                [p[0] for p in pts],
                [p[1] for p in pts],
                yerr=[p[2] for p in pts],
                fmt="o" if cats else "o-",
                color=default if single else palette(si % 10),
                capsize=4,
                lw=1.5,
                ms=6 if cats else 5,
                label=None if single or ax is a2 else s["label"],
            )
    a1.set_ylabel(PS_LABEL, fontsize=9)
    a2.set_ylabel(top1_label, fontsize=9)
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
    if not single:
        a1.legend(fontsize=8, loc="best")
    if cats:
        a2.set_xticks(
            range(len(cats)),
            [_fmt_value(c) for c in cats],
            rotation=30 if len(cats) > 4 else 0,
            ha="right" if len(cats) > 4 else "center",
        )
        a2.set_xlim(-0.5, len(cats) - 0.5)
    elif scale in ("log", "symlog"):
        xs = sorted({float(g["x"]) for s in series for g in s["agg"]})
        if scale == "log":
            a2.set_xscale("log")
        else:
            a2.set_xscale("symlog", linthresh=min(x for x in xs if x > 0), linscale=0.5)
        if len(xs) <= 12:
            a2.set_xticks(xs)
        a2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        a2.minorticks_off()
    else:
        xs = sorted({float(g["x"]) for s in series for g in s["agg"]})
        if len(xs) <= 12:  # tick exactly the grid's values (depth 2, 6, 10 rather than 2.5)
            a2.set_xticks(xs)
            a2.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    n = [g["n"] for s in series for g in s["agg"]]
    seeds = f"mean ± std over {min(n)}-{max(n)} seeds" if max(n) > 1 else "one seed per value"
    if n and min(n) == max(n) > 1:
        seeds = f"mean ± std over {max(n)} seeds"
    a2.set_xlabel(f"{key}" + (" (log scale)" if scale in ("log", "symlog") else ""))
    a1.set_title(f"{_wrap(title)}\n({seeds})", fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def ps_vs_epoch(
    path: Path,
    series: list[dict[str, Any]],
    title: str,
    top1_label: str,
) -> None:
    """PS (top) and top-1 (bottom) against training epoch, one line per trial.

    ``series``: ``[{"label", "group", "group_label", "ps": [(epoch, ps)], "top1": [(epoch, top1)]}]``
    in legend order; trials of one ``group`` (seeds of a grid point) share a colour.
    """
    fig, (a1, a2) = plt.subplots(2, 1, figsize=(8.5, 6.5), sharex=True)
    labels, legend_title, n_legend = legend_labels(series)
    for s, style, lab in zip(series, _styles(series), labels, strict=True):
        for ax, y in ((a1, "ps"), (a2, "top1")):
            pts = sorted(p for p in s[y] if p[0] is not None and p[1] is not None)
            _trial_line(ax, pts, style, 3, lab if ax is a1 else None)
    a1.set_ylabel(PS_LABEL, fontsize=9)
    a2.set_ylabel(top1_label, fontsize=9)
    a2.set_xlabel("training epoch")
    for ax in (a1, a2):
        ax.grid(alpha=0.3)
    a1.set_title(_wrap(title), fontsize=10)
    _legend_outside(a1, n_legend, legend_title)
    fig.tight_layout()
    _save(fig, path)


def per_tap(
    path: Path,
    taps: list[str],
    series: list[dict[str, Any]],
    title: str,
) -> None:
    """PS of each tap on its own, one line per trial (final checkpoints).

    ``series``: ``[{"label", "group", "group_label", "values": [ps or None per tap]}]``.
    """
    fig, ax = plt.subplots(figsize=(max(6.5, 1.0 * len(taps) + 3.5), 5))
    xs = list(range(len(taps)))
    labels, legend_title, n_legend = legend_labels(series)
    for s, style, lab in zip(series, _styles(series), labels, strict=True):
        pts = [(x, v) for x, v in zip(xs, s["values"], strict=True) if v is not None]
        _trial_line(ax, pts, style, 4, lab)
    ax.set_xticks(xs, taps, rotation=30 if len(taps) > 8 else 0)
    ax.set_xlabel("feature tap (used alone)")
    ax.set_ylabel(PS_LABEL, fontsize=9)
    ax.set_title(_wrap(title), fontsize=10)
    ax.grid(alpha=0.3)
    _legend_outside(ax, n_legend, legend_title)
    fig.tight_layout()
    _save(fig, path)
