"""Which PNGs the report draws and what each shows: the series, captions and file names.

``top1_vs_ps.png`` (final checkpoints, the Pareto frontier, the pixel references), one
``<axis>.png`` per sweep (PS and top-1 against the swept value, seeds aggregated, one line per
model: axes.py), ``ps_vs_epoch.png`` and ``per_tap.png``. draw.py draws them; it is imported
only here, when plotting, so ``--no-plots`` never loads matplotlib.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from evaluator.report.analyse import REFERENCE_NAMES, Analysis
from evaluator.report.axes import row_arch
from evaluator.report.collect import Sweep, TrialResults
from evaluator.report.parallel import Figures
from evaluator.report.stats import aggregate_over_seeds, natural_key, x_scale

FIXED_PLOTS = ("top1_vs_ps", "ps_vs_epoch", "per_tap")
MANY_TRIALS = 24  # more trials than this: faceted figures (draw_scale), not one line per trial
BEST_NAMED = 3  # past MAX_LABELS points, top1_vs_ps names the frontier and this many best PS
PS_LABEL_SHORT = "PS (% 2AFC)"
KINDS = ("top1_vs_ps", "axis", "ps_vs_epoch", "per_tap")
AXIS_KINDS = ("axis", "ps_vs_epoch")  # one axis of a study sweep: its layout, its training


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "axis"


def axis_plot_names(a: Analysis) -> dict[str, str]:
    """sweep name -> axis plot file stem: the x key's last part (``weight_decay``), or the
    sweep's name for a categorical sweep (``archs``) or when names would collide."""
    stems = {}
    for sw in a.sweeps:
        keys = a.plans[sw.name].keys
        stems[sw.name] = _file_name(keys[0].rsplit(".", 1)[-1] if keys else sw.axis or sw.name)
    counts = Counter(stems.values())
    for name, stem in stems.items():
        if counts[stem] > 1 or stem in FIXED_PLOTS:
            stems[name] = _file_name(f"{name}_{stem}") if stem != name else _file_name(name)
    return stems


def _top1_label(a: Analysis) -> str:
    names = Counter(str(t.value("data.name")) for t in a.trials if t.value("data.name"))
    data = " / ".join(n for n, _ in names.most_common()) or "the"
    return f"Top-1 accuracy on {data} eval (%)"


def _kv(key: str, value: Any) -> str:
    short = key.rsplit(".", 1)[-1]
    return f"{short}={value:g}" if isinstance(value, float) else f"{short}={value}"


def _group(a: Analysis, t: TrialResults) -> tuple[tuple, str]:
    """Trials that share a model and an x value (seeds of one grid point) share a colour:
    the group's key and its legend label (``resnet-50 weight_decay=0.0001``)."""
    prefix = f"{t.sweep}: " if len(a.sweeps) > 1 else ""
    g = a.plans[t.sweep].group_of(t.key)
    if g is None:
        return (t.sweep, t.key), prefix + t.name
    value = t.value(g.key) if g.key else None
    label = " ".join(x for x in (g.label, _kv(g.key, value) if g.key else "") if x)
    return (t.sweep, g.label, repr(value)), prefix + (label or t.name)


def axis_series(a: Analysis, sw: Sweep) -> tuple[list[dict[str, Any]], str]:
    """The axis plot's series for ``sw`` (seed-aggregated, one per model) and its x label."""
    p = a.plans[sw.name]
    by_trial = {r["trial"]: dict(r, ps=a.ps(r)) for r in a.analysed if r["sweep"] == sw.name}
    series = []
    if p.categorical:
        rows = [
            dict(by_trial[t.key], _x=g.label or t.name)
            for g in p.groups
            for t in g.trials
            if t.key in by_trial
        ]
        if rows:
            agg = aggregate_over_seeds(rows, "_x", ["ps", "top1"])
            series.append({"label": "", "agg": agg})
        return series, "model"
    for g in p.groups:
        if not g.key:
            continue
        rows = [dict(by_trial[t.key], _x=t.value(g.key)) for t in g.trials if t.key in by_trial]
        if not rows:
            continue
        label = g.label + (f" ({g.key})" if g.key != p.keys[0] else "")
        series.append(
            {"label": label.strip(), "agg": aggregate_over_seeds(rows, "_x", ["ps", "top1"])}
        )
    return series, " / ".join(p.keys)


def _top1_vs_ps(a: Analysis, draw: Any, draw_scale: Any, tag: str, top1_label: str) -> tuple:
    """(function, args) of the top-1 vs PS scatter: every name on a small sweep; past
    MAX_LABELS points colour by architecture, names on the frontier and the best few."""
    pts = [{"label": r["trial"], "top1": r["top1"], "ps": a.ps(r)} for r in a.analysed]
    front_keys = {r["trial"] for r in a.frontier}
    frontier = [i for i, r in enumerate(a.analysed) if r["trial"] in front_keys]
    frontier.sort(key=lambda i: (pts[i]["top1"], -pts[i]["ps"]))
    refs = {
        f"{REFERENCE_NAMES.get(k, k)}, same benchmark": v["ps"]
        for k, v in a.references.items()
        if v.get("ps") is not None
    }
    caption = f"Top-1 vs Perceptual Score, final checkpoints ({tag})"
    if len(pts) <= draw.MAX_LABELS:
        return caption, draw.top1_vs_ps, (pts, frontier, refs, caption, top1_label)
    for p, r in zip(pts, a.analysed, strict=True):
        p["group"] = row_arch(r)
    named = sorted(range(len(pts)), key=lambda i: -pts[i]["ps"])[:BEST_NAMED]
    return caption, draw_scale.scatter_many, (pts, frontier, named, refs, caption, top1_label)


def _many(a: Analysis) -> bool:
    return len(a.trials) > MANY_TRIALS


def write_plots(
    a: Analysis, out_dir: Path, figs: Figures, kinds: tuple[str, ...] = KINDS
) -> list[tuple[str, str]]:
    """Queue the plots of ``kinds`` the data allows on ``figs``; return their
    ``[(file name, caption)]``. A sweep with ``axes`` (the study) gets its axis and training
    plots in its per-axis reports (``study.py``), not here."""
    from evaluator.report import draw, draw_scale  # matplotlib only when plotting

    done: list[tuple[str, str]] = []

    def draw_one(name: str, caption: str, fn: Any, *args: Any, cost: float = 1.0) -> None:
        figs.add(out_dir / name, fn, *args, cost=cost)
        done.append((name, caption))

    if not a.ps_col:
        return done
    tag = f"{a.bench}, {a.dist} distance"
    if a.bench == "proxy":
        tag = f"embedded proxy, not BAPPS; {a.dist} distance"
    top1_label = _top1_label(a)
    per_axis = any(sw.axes for sw in a.sweeps)
    if a.analysed and "top1_vs_ps" in kinds:  # the plots against top-1 need both numbers
        caption, fn, args = _top1_vs_ps(a, draw, draw_scale, tag, top1_label)
        draw_one("top1_vs_ps.png", caption, fn, *args)
    if a.analysed and "axis" in kinds:
        stems = axis_plot_names(a)
        for sw in a.sweeps:
            series, label = axis_series(a, sw)
            if not series or sw.axes:
                continue
            scale = x_scale([g["x"] for s in series for g in s["agg"]])
            caption = f"Perceptual Score and top-1 vs {label} (sweep {sw.name}, {tag})"
            fn = draw_scale.study_axis if len(series) > 1 else draw.axis_plot
            series.sort(key=lambda s: natural_key(s["label"]))
            draw_one(f"{stems[sw.name]}.png", caption, fn, label, series, scale, caption,
                     top1_label, cost=2.0)  # fmt: skip
    if per_axis:
        return done
    caption = f"Perceptual Score and top-1 during training ({tag})"
    if "ps_vs_epoch" in kinds and _many(a):
        # Averaged here, before the figure workers fork: a worker reading every row would copy
        # the memory pages holding them (180 MB more at the study's scale, docs/performance.md).
        try:
            lines: Any = epoch_facets(a)
        except Exception as e:  # raised by the figure instead: it costs this plot alone
            lines = e

        def faceted(path: Path) -> None:
            if isinstance(lines, Exception):
                raise lines
            facets, value_label = lines
            panels = [("ps", PS_LABEL_SHORT), ("top1", "top-1 (%)")]
            draw_scale.facet_lines(path, facets, panels, caption, "training epoch", value_label)

        draw_one("ps_vs_epoch.png", caption, faceted, cost=3.0)  # the costliest: first
    elif "ps_vs_epoch" in kinds:
        series = _epoch_series(a)
        if series:
            draw_one("ps_vs_epoch.png", caption, draw.ps_vs_epoch, series, caption, top1_label)
    if a.taps and a.analysed and "per_tap" in kinds:
        caption = f"Perceptual Score of each tap alone, final checkpoints ({tag})"
        if _many(a):

            def taps(path: Path) -> None:
                facets, value_label = tap_facets(a)
                draw_scale.facet_lines(path, facets, [("ps", PS_LABEL_SHORT)], caption,
                                       "feature tap (used alone)", value_label, a.taps)  # fmt: skip

            draw_one("per_tap.png", caption, taps)
        else:
            draw_one("per_tap.png", caption, draw.per_tap, a.taps, _tap_series(a), caption)
    return done


def _lines(a: Analysis) -> tuple[list[tuple[str, list[tuple[Any, list[TrialResults]]]]], str]:
    """Facets (one per model group, sorted) and, inside each, the trials of each swept value:
    ``[(facet label, [(value, [trials])])]`` and the values' label."""
    facets = []
    keys: list[str] = []
    for sw in a.sweeps:
        prefix = f"{sw.name}: " if len(a.sweeps) > 1 else ""
        for g in sorted(a.plans[sw.name].groups, key=lambda g: natural_key(g.label)):
            lines: dict[str, tuple[Any, list[TrialResults]]] = {}
            for t in g.trials:
                v = t.value(g.key) if g.key else (g.label or sw.name)
                lines.setdefault(repr(v), (v, []))[1].append(t)
            facets.append((prefix + (g.label or sw.name), list(lines.values())))
            keys += [g.key] if g.key and g.key not in keys else []
    return facets, " / ".join(k.rsplit(".", 1)[-1] for k in keys) or "model"


def _mean_std(by_x: dict[float, list[float]]) -> list[tuple[float, float, float]]:
    out = []
    for x, ys in by_x.items():
        m = sum(ys) / len(ys)
        sd = (sum((y - m) ** 2 for y in ys) / (len(ys) - 1)) ** 0.5 if len(ys) > 1 else 0.0
        out.append((x, m, sd))
    return out


def _facet_lines(a: Analysis, line: Any) -> tuple[list[dict[str, Any]], str]:
    """``[{"label", "lines": [line(value, trials), ...]}]`` per facet of ``_lines`` (a line
    that ``line`` returns as None, and a facet left without lines, are dropped)."""
    facets, label = _lines(a)
    out = []
    for flabel, lines in facets:
        drawn = [ln for value, trials in lines if (ln := line(value, trials))]
        if drawn:
            out.append({"label": flabel, "lines": drawn})
    return out, label


def epoch_facets(a: Analysis) -> tuple[list[dict[str, Any]], str]:
    """ps_vs_epoch at scale: per facet, one line per swept value, PS and top-1 along training
    averaged over the value's seeds at each epoch."""
    rows = _rows_by_trial(a)

    def line(value: Any, trials: list[TrialResults]) -> dict[str, Any] | None:
        ps: dict[float, list[float]] = {}
        top1: dict[float, list[float]] = {}
        for t in trials:
            for r in rows.get(t.key, []):
                if r.get("epoch") is not None and a.ps(r) is not None:
                    ps.setdefault(round(r["epoch"], 3), []).append(a.ps(r))
            for e in t.evals.values():
                if e.get("eval_top1") is not None and e.get("epoch") is not None:
                    top1.setdefault(round(e["epoch"], 3), []).append(100.0 * e["eval_top1"])
        if not ps:
            return None
        return {"value": value, "seeds": len(trials), "ps": _mean_std(ps), "top1": _mean_std(top1)}

    return _facet_lines(a, line)


def tap_facets(a: Analysis) -> tuple[list[dict[str, Any]], str]:
    """per_tap at scale: per facet, one line per swept value, each tap's PS (final
    checkpoints) averaged over the value's seeds."""
    finals = {r["trial"]: r for r in a.analysed}

    def line(value: Any, trials: list[TrialResults]) -> dict[str, Any] | None:
        by_tap: dict[float, list[float]] = {}
        for t in trials:
            r = finals.get(t.key)
            for i, tap in enumerate(a.taps):
                v = r.get(f"tap_{a.bench}_{a.dist}_{tap}") if r else None
                if v is not None:
                    by_tap.setdefault(float(i), []).append(v)
        return {"value": value, "seeds": len(trials), "ps": _mean_std(by_tap)} if by_tap else None

    return _facet_lines(a, line)


def _rows_by_trial(a: Analysis) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in a.rows:
        out.setdefault(r["trial"], []).append(r)
    return out


def _epoch_series(a: Analysis) -> list[dict[str, Any]]:
    """ps_vs_epoch's lines: every scored step of each trial with a PS, and its eval top-1s (PS
    alone is enough: an imported trial, evaluator.imports, has no top-1)."""
    series = []
    rows = _rows_by_trial(a)
    for t in a.trials:
        ps = [(r.get("epoch"), a.ps(r)) for r in rows.get(t.key, [])]
        if not any(p[1] is not None for p in ps):
            continue
        top1 = [
            (e.get("epoch"), 100.0 * e["eval_top1"])
            for e in t.evals.values()
            if e.get("eval_top1") is not None
        ]
        group, group_label = _group(a, t)
        series.append(
            {"label": t.key, "group": group, "group_label": group_label, "ps": ps, "top1": top1}
        )
    return series


def _tap_series(a: Analysis) -> list[dict[str, Any]]:
    """per_tap's lines: the PS of each tap alone, one line per analysed (final) row."""
    trials = {t.key: t for t in a.trials}
    return [
        {
            "label": r["trial"],
            "group": _group(a, trials[r["trial"]])[0],
            "group_label": _group(a, trials[r["trial"]])[1],
            "values": [r.get(f"tap_{a.bench}_{a.dist}_{tap}") for tap in a.taps],
        }
        for r in a.analysed
    ]
