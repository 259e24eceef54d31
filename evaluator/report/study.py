"""One report per axis of a sweep whose ``sweep.json`` carries ``axes`` (the ``study`` sweep):
``runs/<sweep>/axes/<axis>/report.md`` with its own figures (``<axis>.png``, the study's
layout: a row of panels, one per architecture, PS and top-1 against the swept value; and
``ps_vs_epoch.png``: PS along training, one curve per swept value), and the lines of the combined report's *Axes* section that link them.

Each axis is reported as a sweep of its own (``collect.axis_sweep``) with the combined
report's benchmark and distance, so every axis reads the same numbers.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evaluator.report import render
from evaluator.report.analyse import Analysis, analyse
from evaluator.report.collect import axis_sweep
from evaluator.report.parallel import Figures
from evaluator.report.plots import AXIS_KINDS, axis_plot_names, write_plots
from trainer.files import atomic_write_text

AXES_DIR = "axes"


def axis_dir_name(axis: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", axis).strip("_") or "axis"


@dataclass
class AxisReport:
    """One axis, analysed, its figures queued: ``info`` is its line of the combined report,
    ``{"sweep", "axis", "key", "trials", "report", "figure", "caption"}`` (paths relative to
    the combined report's directory)."""

    info: dict[str, Any]
    analysis: Analysis
    where: Path
    made: list[tuple[str, str]]


def queue_axis_reports(
    a: Analysis, rows: list[dict[str, Any]], out_dir: Path, figs: Figures | None
) -> list[AxisReport]:
    """Analyse every axis of every sweep with ``axes`` in ``a`` (``rows``: every collected row)
    and queue its figures on ``figs`` (None: no figures); ``write_axis_reports`` writes the
    reports once the figures are drawn."""
    out = []
    for sw in a.sweeps:
        prefix = f"{sw.name}/" if len(a.sweeps) > 1 else ""  # --all: runs/axes/<sweep>/<axis>
        for name in sw.axes:
            sub = axis_sweep(sw, name)
            keys = {t.key for t in sub.trials}
            mine = [r for r in rows if r["trial"] in keys]
            sa = analyse([sub], mine, a.bench, a.dist) if a.dist else analyse([sub], mine)
            where = out_dir / AXES_DIR / (prefix + axis_dir_name(name))
            where.mkdir(parents=True, exist_ok=True)
            made = write_plots(sa, where, figs, AXIS_KINDS) if figs else []
            stem = axis_plot_names(sa).get(sw.name)
            fig = [m for m in made if m[0] == f"{stem}.png"]
            rel = os.path.relpath(where, out_dir)
            info = {
                "sweep": sw.name, "axis": name, "key": sw.axes[name]["key"],
                "trials": len(sub.trials), "report": f"{rel}/report.md",
                "figure": f"{rel}/{fig[0][0]}" if fig else None,
                "caption": fig[0][1] if fig else None,
            }  # fmt: skip
            out.append(AxisReport(info, sa, where, made))
    return out


def write_axis_reports(axes: list[AxisReport], figs: Figures | None) -> list[dict[str, Any]]:
    """Write each axis's ``report.md`` once its figures are drawn; return their ``info``
    (an axis figure that could not be drawn left out)."""
    out = []
    for x in axes:
        kept = figs.kept(x.where, x.made) if figs else []
        failed = figs.failed(x.where) if figs else []
        title = f"Report: sweep {x.info['sweep']}, axis {x.info['axis']}"
        atomic_write_text(x.where / "report.md", render.render(x.analysis, title, kept, failed))
        figure = x.info["figure"]
        if figure and not (figs and figs.drawn(x.where / os.path.basename(figure))):
            x.info["figure"] = x.info["caption"] = None
        out.append(x.info)
    return out


def render_axes(axes: list[dict[str, Any]]) -> list[str]:
    """The combined report's *Axes* section: a table of the axes and each axis's figure."""
    if not axes:
        return []
    out = ["", "## Axes", "", "One report per axis (sweep.json's `axes`; a trial on several "
           "axes, such as the default recipe, is in each), with the figures of that axis:", ""]  # fmt: skip
    out += ["| axis | key | trials | report |", "| --- | --- | --- | --- |"]
    for x in axes:
        out.append(f"| {x['axis']} | `{x['key'] or 'the model'}` | {x['trials']} | "
                   f"[{x['report']}]({x['report']}) |")  # fmt: skip
    for x in axes:
        if x["figure"]:
            out += ["", f"### {x['caption']}", "", f"![{x['caption']}]({x['figure']})"]
    return out
