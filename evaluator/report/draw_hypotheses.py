"""Drawing the Hypotheses section's figures (matplotlib, Agg), each PNG written atomically by
``draw._save``; ``hypotheses.py`` decides what each shows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from evaluator.report.axes import row_arch

# draw sets matplotlib's Agg backend before pyplot loads: import pyplot through it
from evaluator.report.draw import PS_LABEL, _colors, _save, _wrap, plt
from evaluator.report.stats import format_p, natural_key

MAX_POINT_LEGEND = 16  # more trials than this: colour follows the report order, no legend


def _corr_text(c: Any) -> str:
    if c is None or c.rho is None:
        return f"Spearman: {(c.note if c else '') or 'n/a'} (n = {c.n if c else 0})"
    p = format_p(c.p, 2)
    return f"Spearman ρ = {c.rho:+.2f}, p = {p}, n = {c.n}"


def probe_scatter(path: Path, probe: Any, trials: list[Any], title: str) -> None:
    """The probe's value (x) against PS (left) and top-1 (right), one colour per trial, every
    scored checkpoint a point; each panel's title carries its Spearman correlation. Past
    MAX_POINT_LEGEND trials: one small-point scatter, colour following the report order."""
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for p in probe.points:
        by_trial.setdefault(p["trial"], []).append(p)
    order = [t.key for t in trials if t.key in by_trial]
    colors = dict(zip(order, _colors(len(order)), strict=True))
    many = len(order) > MAX_POINT_LEGEND
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), sharex=True)
    for ax, y, corr, ylabel in (
        (axes[0], "ps", probe.vs_ps, PS_LABEL),
        (axes[1], "top1", probe.vs_top1, "Top-1 accuracy (%)"),
    ):
        pts = [(p, colors[k]) for k in order for p in by_trial[k] if p[y] is not None]
        if many and pts:
            ax.scatter([p["value"] for p, _ in pts], [p[y] for p, _ in pts], s=4, lw=0,
                       c=[c for _, c in pts], alpha=0.6, rasterized=True, zorder=3)  # fmt: skip
        elif pts:
            for key in order:
                mine = [p for p in by_trial[key] if p[y] is not None]
                if mine:
                    ax.scatter([p["value"] for p in mine], [p[y] for p in mine], s=30,
                               color=colors[key], edgecolor="black", lw=0.4, label=key,
                               zorder=3)  # fmt: skip
        else:
            ax.text(0.5, 0.5, f"no {ylabel.split(' (')[0]} for these checkpoints",
                    ha="center", va="center", transform=ax.transAxes, fontsize=9)  # fmt: skip
        ax.set_xlabel(probe.label, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)
        ax.set_title(_corr_text(corr), fontsize=9)
        ax.grid(alpha=0.3)
    fig.suptitle(_wrap(title + (" (colour: trial, in the report's order)" if many else ""), 110),
                 fontsize=10)  # fmt: skip
    handles, labels = axes[0].get_legend_handles_labels()  # every trial has a PS point
    if handles and not many:
        axes[1].legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8,
                       title="trial", title_fontsize=8, frameon=False)  # fmt: skip
    fig.tight_layout()
    _save(fig, path)


def frequency_curves(path: Path, curves: list[dict[str, Any]], title: str) -> None:
    """Normalised top-1 (filtered / clean) against the kept square's edge r / image size:
    low-pass (left: r grows, more of the spectrum kept) and high-pass (right: r grows, more
    of the low frequencies removed), one line per trial."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), sharey=True)
    styles = ("-", "--", ":", "-.")
    for i, c in enumerate(curves):
        for ax, key in ((axes[0], "low"), (axes[1], "high")):
            pts = [(x, y) for x, y in zip(c["x"], c[key], strict=True) if y is not None]
            label = c["label"] + (
                f", slope {c['slope']:.2f}" if key == "low" and c.get("slope") is not None else ""
            )
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ls=styles[i % 4],
                    lw=1.5, ms=4, label=label)  # fmt: skip
    axes[0].axvspan(
        5 / 8, 7 / 8, color="grey", alpha=0.12, label="slope read here (r/size 5/8-7/8)"
    )
    axes[0].set_title("low-pass: keep the centred r x r of the spectrum", fontsize=9)
    axes[1].set_title("high-pass: remove the centred r x r of the spectrum", fontsize=9)
    axes[0].set_ylabel("top-1 filtered / top-1 clean", fontsize=9)
    for ax in axes:
        ax.set_xlabel("filter edge r / image size", fontsize=9)
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(_wrap(title, 110), fontsize=10)
    fig.tight_layout()
    _save(fig, path)


def dynamic_range(path: Path, h: Any, title: str) -> None:
    """PS of simulated distances against their noise sigma, the labels' ceiling, chance, and
    the band the scored checkpoints span."""
    dyn = h.dynamic
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.plot(dyn["sigmas"], dyn["ps"], marker="o", color="#4c72b0",
            label="simulated distances (truncated normal noise, spread sigma)")  # fmt: skip
    ax.axhline(dyn["ceiling"], color="#dd8452", ls="--", label=f"ceiling {dyn['ceiling']:.1f}")
    ax.axhline(50.0, color="grey", ls=":", label="chance 50")
    if h.model_range:
        lo, hi = h.model_range
        ax.axhspan(lo, hi, color="#55a868", alpha=0.25,
                   label=f"scored checkpoints ({h.dist}): {lo:.1f}-{hi:.1f}")  # fmt: skip
    ax.set_xlabel("noise sigma of the simulated distances")
    ax.set_ylabel(PS_LABEL)
    ax.set_title(_wrap(title), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper right")
    fig.tight_layout()
    _save(fig, path)


def distance_bars(
    path: Path, rows: list[dict[str, Any]], distances: list[str], bench: str, title: str
) -> None:
    """Grouped bars: one group per trial (final checkpoint), one bar per distance function;
    past MAX_POINT_LEGEND trials one group per architecture (mean, std as error bar)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    many = len(rows) > MAX_POINT_LEGEND
    for r in rows:
        groups.setdefault(row_arch(r) if many else r["trial"], []).append(r)
    names = sorted(groups, key=natural_key) if many else list(groups)
    fig, ax = plt.subplots(
        figsize=(min(14.0, max(7.0, 0.3 * len(names) * len(distances) + 3)), 4.8)
    )
    width = 0.8 / max(1, len(distances))
    palette = plt.get_cmap("tab10")
    vals = []
    for j, d in enumerate(distances):
        pts = []
        for i, name in enumerate(names):
            ys = [
                r[f"ps_{bench}_{d}"] for r in groups[name] if r.get(f"ps_{bench}_{d}") is not None
            ]
            if ys:
                x = i + (j - (len(distances) - 1) / 2) * width
                pts.append((x, float(np.mean(ys)), float(np.std(ys))))
        vals += [p[1] for p in pts]
        ax.bar([p[0] for p in pts], [p[1] for p in pts], width=width, color=palette(j % 10),
               yerr=[p[2] for p in pts] if many else None,
               label=d + (" (learned, LPIPS calibration)" if d == "lin" else ""))  # fmt: skip
    ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 5 else 0, ha="right"
                  if len(names) > 5 else "center")  # fmt: skip
    if vals:
        ax.set_ylim(max(0.0, min(vals) - 3.0), min(100.0, max(vals) + 3.0))
    ax.set_ylabel(PS_LABEL + (" (mean ± std over its trials)" if many else ""), fontsize=9)
    ax.set_title(_wrap(title), fontsize=10)
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    _save(fig, path)
