"""report.md: the text of the report, rendered from an ``Analysis``."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

from evaluator.report.analyse import (
    CHANCE_MARGIN,
    PROXY_WARNING,
    PUBLISHED_BAPPS,
    PUBLISHED_SOURCE,
    REFERENCE_NAMES,
    Analysis,
    group_mean,
    mean_or_none,
)
from evaluator.report.stats import EXACT_MAX_N, Correlation, format_p, sort_key


def _f(v: Any, digits: int = 1) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def _val(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _table(head: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in r) + " |" for r in body]
    return lines


def _bench_line(a: Analysis) -> str:
    if a.bench is None:
        return "**Benchmark:** none scored yet."
    if a.bench == "proxy":
        return f"**Benchmark: proxy**, the {PROXY_WARNING}."
    if a.bench == "bapps":
        return "**Benchmark: BAPPS** (Zhang et al. 2018), 2AFC val categories and JND."
    return f"**Benchmark: {a.bench}**."


def _axis_keys(a: Analysis) -> list[str]:
    keys: list[str] = []
    for p in a.plans.values():
        keys += [k for k in p.keys if k not in keys]
    return keys


def _show_model(a: Analysis) -> bool:
    return any(len(p.groups) > 1 for p in a.plans.values())


def _model_of(a: Analysis) -> dict[str, str]:
    return {t.key: g.label for p in a.plans.values() for g in p.groups for t in g.trials}


def _show_seed(a: Analysis) -> bool:
    seeds = {repr(t.value("seed")) for t in a.trials}
    return len(seeds) > 1 or any("seed" in sw.swept for sw in a.sweeps)


def _sweep_line(a: Analysis, sw: Any) -> str:
    if sw.axes:
        return (
            f"{len(sw.axes)} axes ({', '.join(sw.axes)}; each in its own report, *Axes*); "
            f"{len(sw.trials)} trials."
        )
    p = a.plans[sw.name]
    if p.categorical:
        x = f"one point per model ({len(p.groups)} models)"
    else:
        parts = [f"`{g.key}`" + (f" ({g.label})" if g.label else "") for g in p.groups if g.key]
        x = "x-axis " + ", ".join(parts)
    seeds = sorted({t.value("seed") for t in sw.trials if t.exists}, key=sort_key)
    others = [k for k in sw.swept if k not in p.keys and k != "seed"]
    text = f"{x}; seeds {', '.join(map(str, seeds)) or '–'}; {len(sw.trials)} trials."
    if others:
        text += f" Also differing between trials: {', '.join(f'`{k}`' for k in others)}."
    return text + f" (Swept keys: {sw.swept_from}.)"


def _trial_table(a: Analysis) -> list[str]:
    keys = _axis_keys(a)
    combined = len(a.sweeps) > 1
    frontier = {r["trial"] for r in a.frontier}
    model = _model_of(a) if _show_model(a) else None
    head = (["sweep"] if combined else []) + ["trial"] + (["model"] if model else []) + keys
    head += ["seed"] if _show_seed(a) else []
    head += ["state", "epoch", "step", "top-1 (%)"]
    head += [f"PS {d}" + (" (used)" if d == a.dist else "") for d in a.distances]
    jnd = [d for d in a.distances if any(r.get(f"jnd_{a.bench}_{d}") is not None for r in a.rows)]
    head += [f"JND {d}" for d in jnd]
    head += ["frontier"]
    body = []
    for t in a.trials:
        r = a.finals.get(t.key, {})
        line = ([t.sweep] if combined else []) + [f"`{t.name}`"]
        line += [model.get(t.key, "–")] if model else []
        line += [_val(t.value(k)) for k in keys]
        line += [_val(t.value("seed"))] if _show_seed(a) else []
        state = t.state + (" (did not learn)" if t.key in a.untrained else "")
        line += [state, _f(r.get("epoch"), 2), _f(r.get("step")), _f(r.get("top1"))]
        line += [_f(r.get(f"ps_{a.bench}_{d}")) for d in a.distances]
        line += [_f(r.get(f"jnd_{a.bench}_{d}")) for d in jnd]
        line += ["★" if t.key in frontier else ""]
        body.append(line)
    return _table(head, body)


def _corr_cell(c: Correlation) -> list[str]:
    if c.rho is None:
        return [str(c.n), "–", "–", c.note]
    return [str(c.n), f"{c.rho:+.3f}", format_p(c.p), ""]


def _where(a: Analysis, best: dict[str, Any], tap: str) -> str:
    r = best["row"]
    return (
        f"**{best['value']:.2f}** at trial `{r['trial']}`, epoch {_f(r.get('epoch'), 2)} "
        f"(step {r['step']}), tap: {tap}, distance `{a.dist}`"
    )


def _summary(a: Analysis) -> list[str]:
    """The bullet list under the title: what PS and top-1 are, the sweeps, the trial counts."""
    states = Counter(t.state for t in a.trials)
    n_scored = len(a.rows)
    out = [
        f"- Perceptual Score (PS): the unweighted mean of the benchmark's 2AFC categories, in % "
        f"agreement; distance used: `{a.dist or '–'}`"
        + (
            f" (also scored: {', '.join(d for d in a.distances if d != a.dist)})"
            if len(a.distances) > 1
            else ""
        )
        + ".",
        "- Top-1: the trainer's eval top-1 (%) at the scored step, or at the nearest eval step "
        "(`top1_step` in results.csv).",
    ]
    for sw in a.sweeps:
        out.append(f"- Sweep `{sw.name}` (preset {sw.preset or '–'}): {_sweep_line(a, sw)}")
    out.append(
        f"- Trials: {len(a.trials)} ("
        + ", ".join(f"{n} {s}" for s, n in sorted(states.items()))
        + f"); scored checkpoints: {n_scored}."
    )
    others = [b for b in a.benches if b != a.bench]
    if others:
        out.append(f"- Also scored: {', '.join(others)} (in results.csv).")
    out.append(f"- Generated {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}.")
    return out


def _best_section(a: Analysis) -> list[str]:
    out = ["", "## Best Perceptual Score", ""]
    if a.best:
        out.append(f"- All taps: {_where(a, a.best, 'all')}.")
    if a.best_tap:
        tap = a.best_tap["column"][len(f"tap_{a.bench}_{a.dist}_") :]
        out.append(f"- One tap alone: {_where(a, a.best_tap, f'`{tap}`')}.")
    if not a.best:
        out.append("No scored checkpoint yet.")
    return out


def _correlation_section(a: Analysis) -> list[str]:
    out = ["", "## Top-1 vs Perceptual Score", ""]
    thr, thr_all = a.peak_thresholds.get("final"), a.peak_thresholds.get("all")
    out += [
        f"Spearman rank correlation (scipy.stats.spearmanr) of top-1 and PS (`{a.dist}`), with its "
        f"two-sided p-value (exact permutation test up to {EXACT_MAX_N} points, scipy's t "
        f"approximation above). Final checkpoints: {a.analysed_note}. **Above the peak** = the points "
        "whose top-1 is at least the median top-1 of the set (the upper half by accuracy"
        + (f": top-1 >= {thr:.1f}% for final checkpoints" if thr is not None else "")
        + (f", >= {thr_all:.1f}% for all checkpoints" if thr_all is not None else "")
        + "); the threshold does not depend on PS.",
        "",
    ]
    body = [[name, *_corr_cell(c)] for name, c in a.correlations]
    body += [[f"sweep `{name}`, final checkpoints", *_corr_cell(c)] for name, c in a.per_sweep]
    body += [[f"final checkpoints, all, distance `{d}`", *_corr_cell(c)] for d, c in a.per_distance]
    out += (
        _table(["points", "n", "Spearman ρ", "p-value", "note"], body)
        if body
        else ["No point has both a top-1 and a PS yet."]
    )
    return out


def _frontier_section(a: Analysis) -> list[str]:
    out = ["", "## Pareto frontier (top-1, PS)", ""]
    if a.frontier:
        out.append("Trials that no other trial beats on both top-1 and PS (both maximised):")
        out.append("")
        out += _table(
            ["trial", "top-1 (%)", "PS"],
            [[f"`{r['trial']}`", _f(r["top1"]), _f(a.ps(r))] for r in a.frontier[::-1]],
        )
    else:
        out.append("No point has both a top-1 and a PS yet.")
    return out


def _references_section(a: Analysis) -> list[str]:
    out = ["", "## Reference rows", ""]
    ref_body = [
        [REFERENCE_NAMES.get(k, k), _f(v["ps"]), _f(v.get("jnd")), "measured on this benchmark"]
        for k, v in a.references.items()
    ]
    if a.bench == "bapps":
        ref_body += [[n, _f(v), "–", PUBLISHED_SOURCE] for n, v in PUBLISHED_BAPPS]
    if ref_body:
        out += _table(["method", "PS", "JND", "source"], ref_body)
    else:
        out.append("No reference scores yet.")
    if a.bench == "proxy":
        out += ["", "Published BAPPS values are not listed: this benchmark is not BAPPS."]
    return out


MAX_CATEGORY_ROWS = 40  # networks listed one by one in the per-category table; above: a summary
MAX_NAMED = 6  # networks named in a cell of "above the pixel references"
ABOVE_REFERENCES = ("l2", "ssim")  # do the networks beat pixel L2 / SSIM? (the study's question)


def _scores_line(name: str, top1: Any, scores: dict, a: Analysis, ps: Any) -> list[str]:
    line = [name, _f(top1)] + [_f(scores.get(c)) for c in a.categories]
    line += [f"*{_f(group_mean(scores, cats))}*" for _, cats, _ in a.groups]
    return line + [f"**{_f(ps)}**"]


def _above(nets: list[tuple[str, float | None]], ref: float | None) -> str:
    if ref is None:
        return "–"
    scored = [(n, v) for n, v in nets if v is not None]
    up = sorted(((n, v) for n, v in scored if v > ref), key=lambda p: -p[1])
    text = f"{len(up)} of {len(scored)}"
    if up and len(up) <= MAX_NAMED:
        text += ": " + ", ".join(f"`{n}` ({v:.1f})" for n, v in up)
    elif up:
        text += f"; best `{up[0][0]}` ({up[0][1]:.1f})"
    return text


def _categories_section(a: Analysis) -> list[str]:
    """Each 2AFC category: the pixel references, the networks (final checkpoints) and the groups'
    means, then how many networks score above each reference, overall and per group."""
    if not a.categories or not a.analysed:
        return []
    nets = [(r["trial"], r.get("top1"), a.category_scores(r), a.ps(r)) for r in a.analysed]
    out = ["", "## Per category", ""]
    out.append(
        f"2AFC agreement (%) per category, distance `{a.dist}`; the pixel references on the same "
        f"triplets. Networks: {a.analysed_note}. PS is the mean of every category"
        + "".join(
            f"; *{g} mean* the mean of {', '.join(cats)}: {what}" for g, cats, what in a.groups
        )
        + "."
    )
    out.append("")
    body = [
        _scores_line(REFERENCE_NAMES.get(k, k), None, v.get("2afc") or {}, a, v["ps"])
        for k, v in a.references.items()
    ]
    shown = [(f"`{n}`", *rest) for n, *rest in nets]
    if len(nets) > MAX_CATEGORY_ROWS:  # a study: the best, median and worst by PS, and the mean
        by_ps = sorted((n for n in nets if n[3] is not None), key=lambda n: -n[3])
        picks = [(by_ps[0], "best"), (by_ps[len(by_ps) // 2], "median"), (by_ps[-1], "worst")]
        shown = [(f"`{n[0]}` ({why} PS)", *n[1:]) for n, why in picks] if by_ps else []
    body += [_scores_line(name, t, sc, a, ps) for name, t, sc, ps in shown]
    if len(nets) > 1:
        mean = {c: mean_or_none([sc.get(c) for _, _, sc, _ in nets]) for c in a.categories}
        ps_mean = mean_or_none([ps for *_, ps in nets])
        body.append(_scores_line(f"mean of {len(nets)} networks", None, mean, a, ps_mean))
    head = ["method", "top-1 (%)", *a.categories, *(f"*{g} mean*" for g, _, _ in a.groups), "PS"]
    out += _table(head, body)
    if len(nets) > MAX_CATEGORY_ROWS:
        out += [
            "",
            f"{len(nets)} networks: the best, median and worst by PS shown; every one in "
            f"results.csv (`2afc_{a.bench}_{a.dist}_<category>`).",
        ]
    refs = [(k, a.references[k]) for k in ABOVE_REFERENCES if k in a.references]
    if not refs:
        return out
    scores = [("PS (every category)", lambda sc, ps: ps)] + [
        (f"{g} mean", lambda sc, ps, cats=cats: group_mean(sc, cats)) for g, cats, _ in a.groups
    ]
    out += ["", "Networks (final checkpoints) scoring above each pixel reference:", ""]
    rows = []
    for label, fn in scores:
        line = [label]
        for _, v in refs:
            ref = fn(v.get("2afc") or {}, v["ps"])
            line += [_f(ref), _above([(n, fn(sc, ps)) for n, _, sc, ps in nets], ref)]
        rows.append(line)
    head = ["score"]
    for k, _ in refs:
        head += [REFERENCE_NAMES[k], "networks above it"]
    return out + _table(head, rows)


def _missing_section(a: Analysis) -> list[str]:
    out = ["", "## Missing", ""]
    if a.missing:
        out += [
            "Trials or checkpoints not (yet) in the numbers above: trials that did not learn "
            f"(final top-1 under chance + {CHANCE_MARGIN:g} points), failed, diverged, pending, "
            "running or preempted trials, checkpoints not scored, scoring errors.",
            "",
        ]
        out += [f"- {m}" for m in a.missing]
    else:
        out.append("Nothing: every trial finished and every checkpoint on disk is scored.")
    return out


def _plots_section(plots: list[tuple[str, str]], failed: list[str] | None) -> list[str]:
    out = ["", "## Plots", ""]
    if plots:
        for name, caption in plots:
            out += [f"### {caption}", "", f"![{caption}]({name})", ""]
    elif not failed:
        out.append("None yet: no scored checkpoint has both a top-1 and a PS.")
    for f in failed or []:
        out.append(f"- could not draw {f}")
    out += ["", "All rows (every trial and scored step, every score): `results.csv`.", ""]
    return out


def render(
    a: Analysis,
    title: str,
    plots: list[tuple[str, str]],
    failed: list[str] | None = None,
    hypotheses: list[str] | None = None,
    lead: list[str] | None = None,
) -> str:
    """report.md's text; ``plots`` are ``(file name, caption)``, ``failed`` the plots not drawn,
    ``hypotheses`` the Hypotheses section's lines (``hypotheses.render``), ``lead`` sections
    before the trial table (Table 1, the axes of a study sweep)."""
    out: list[str] = [f"# {title}", "", _bench_line(a), ""]
    out += _summary(a)
    out += lead or []
    out += ["", "## Trials (final checkpoints)", ""]
    out += [
        "Latest scored checkpoint of each trial, sorted by the swept values; ★ = on the Pareto "
        "frontier of (top-1, PS).",
        "",
    ]
    out += _trial_table(a)
    out += _best_section(a)
    out += _correlation_section(a)
    out += _frontier_section(a)
    out += _references_section(a)
    out += _categories_section(a)
    out += hypotheses or []
    out += _missing_section(a)
    if a.notes:
        out += ["", "## Notes", "", *[f"- {n}" for n in a.notes]]
    out += _plots_section(plots, failed)
    return "\n".join(out)
