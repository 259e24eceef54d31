"""What the report says, computed from the collected rows: the benchmark and distance it uses,
the final checkpoint of each trial, correlations, the Pareto frontier, the best scores, the
reference rows and what is missing."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from evaluator.bapps import BAPPS_2AFC_GROUPS
from evaluator.names import PIXEL_METRICS
from evaluator.proxy_distortions import SEVERITY_CATEGORIES
from evaluator.proxy_eqmse import EQMSE_CATEGORIES
from evaluator.report.axes import AxisPlan, plan
from evaluator.report.collect import (
    DONE,
    ReportError,
    Sweep,
    TrialResults,
    benchmarks_present,
    categories_present,
    column_names,
    distances_present,
    taps_present,
)
from evaluator.report.stats import (
    Correlation,
    above_peak,
    natural_key,
    pareto_front,
    sort_key,
    spearman,
)

# Published 2AFC scores on the BAPPS val set (Zhang et al., CVPR 2018, as cited by Kumar et al.).
PUBLISHED_BAPPS = (
    ("Human", 73.9),
    ("LPIPS Alex-lin", 69.8),
    ("AlexNet (unweighted)", 68.9),
    ("VGG (unweighted)", 67.0),
    ("L2 (pixels)", 63.2),
    ("SSIM", 63.1),
)
PUBLISHED_SOURCE = "published (Zhang et al. 2018)"
PROXY_WARNING = (
    "embedded proxy benchmark (synthetic distortions of public-domain photos), not BAPPS: "
    "the numbers are not comparable to the paper's"
)
REFERENCE_NAMES = {"l2": "L2 (pixels)", "ssim": "SSIM"}
# The 2AFC categories a report also averages by group: (group, its categories, what it is).
CATEGORY_GROUPS = {
    "proxy": (
        ("severity", SEVERITY_CATEGORIES, "two severities of one distortion"),
        (
            "equal-MSE",
            EQMSE_CATEGORIES,
            "a benign change against a visible distortion at equal pixel L2, where L2 is at "
            "chance by construction (docs/proxy.md)",
        ),
    ),
    "bapps": BAPPS_2AFC_GROUPS,
}
# A finished trial whose final top-1 is below chance (100 / data.num_classes) plus this many
# points "did not learn" (e.g. EfficientNet with long-run BatchNorm momentum in a short run):
# it is flagged and kept out of the statistics, not ranked beside trained networks.
CHANCE_MARGIN = 5.0


@dataclass
class Analysis:
    sweeps: list[Sweep]
    rows: list[dict[str, Any]]  # every scored row, but those of trials that did not learn
    bench: str | None
    dist: str | None
    benches: list[str]
    distances: list[str]
    taps: list[str]
    trials: list[TrialResults]  # every trial, in report order
    plans: dict[str, AxisPlan]  # sweep name -> its x keys and groups (axes.py)
    finals: dict[str, dict[str, Any]]  # trial key -> row of its latest scored step
    analysed: list[dict[str, Any]]  # the final rows the statistics use (with top-1 and PS)
    analysed_note: str
    correlations: list[tuple[str, Correlation]] = field(default_factory=list)
    peak_thresholds: dict[str, float | None] = field(default_factory=dict)
    frontier: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] | None = None  # best PS over every scored row (the distance's all taps)
    best_tap: dict[str, Any] | None = None  # best single-tap PS over every scored row
    references: dict[str, dict[str, float | None]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # data clamped, checkpoints moved aside
    per_sweep: list[tuple[str, Correlation]] = field(default_factory=list)
    per_distance: list[tuple[str, Correlation]] = field(default_factory=list)  # other distances
    untrained: dict[str, str] = field(default_factory=dict)  # trial key -> why it did not learn
    columns: set[str] = field(default_factory=set)  # every column of every row (not only rows')
    categories: list[str] = field(default_factory=list)  # 2AFC categories of (bench, dist)
    groups: list[tuple[str, list[str], str]] = field(default_factory=list)  # present ones

    def category_scores(self, row: dict[str, Any]) -> dict[str, float | None]:
        """A row's 2AFC score per category, for the report's distance."""
        return {c: row.get(f"2afc_{self.bench}_{self.dist}_{c}") for c in self.categories}

    @property
    def ps_col(self) -> str | None:
        return f"ps_{self.bench}_{self.dist}" if self.bench and self.dist else None

    def ps(self, row: dict[str, Any]) -> float | None:
        return row.get(self.ps_col) if self.ps_col else None


def trial_order(
    sweeps: list[Sweep], plans: dict[str, AxisPlan] | None = None
) -> list[TrialResults]:
    """Trials sorted by sweep, model (group), the x value in numeric order, seed and name."""
    plans = plans or {sw.name: plan(sw) for sw in sweeps}
    where: dict[str, tuple] = {}
    for sw in sweeps:
        groups = sorted(plans[sw.name].groups, key=lambda g: natural_key(g.label))
        for gi, g in enumerate(groups):
            for t in g.trials:
                where[t.key] = (gi, sort_key(t.value(g.key)) if g.key else (0, 0.0, ""))

    def key(pair: tuple[Sweep, TrialResults]) -> tuple:
        sw, t = pair
        gi, x = where.get(t.key, (1 << 30, (0, 0.0, "")))
        return (sw.name, gi, x, sort_key(t.value("seed")), natural_key(t.name))

    pairs = [(sw, t) for sw in sweeps for t in sw.trials]
    return [t for _, t in sorted(pairs, key=key)]


def _configured_benchmarks(sweeps: list[Sweep]) -> list[str]:
    found: Counter = Counter()
    for sw in sweeps:
        for t in sw.trials:
            for b in str(t.value("perceptual.benchmarks") or "").split(","):
                if b:
                    found[b] += 1
    return [b for b, _ in found.most_common()]


def _choose(benches: list[str], want: str | None, what: str) -> str | None:
    """``want`` if it was scored (or nothing was), else a one-line error; default: the first."""
    if want:
        if benches and want not in benches:
            raise ReportError(f"--{what} {want!r} has no scores here; scored: {', '.join(benches)}")
        return want
    return benches[0] if benches else None


def _missing(trials: list[TrialResults], finals: dict[str, dict]) -> list[str]:
    lines = []
    for t in trials:
        state, st = t.state, t.status
        if state == "not started":
            lines.append(f"`{t.key}`: not started (listed in sweep.json, no directory yet)")
        elif state != DONE:
            what = state
            if st.get("step") is not None and st.get("total_steps"):
                what += f" at step {st['step']}/{st['total_steps']}"
            err = str(st.get("error") or "").splitlines()
            lines.append(f"`{t.key}`: {what}" + (f" ({err[0]})" if err and err[0] else ""))
        if t.exists and not t.scored and not t.errors:
            lines.append(f"`{t.key}`: no checkpoint scored yet")
        unscored = t.unscored_steps
        if unscored:
            lines.append(
                f"`{t.key}`: checkpoint steps not yet scored: {', '.join(map(str, unscored))}"
            )
        final_step = st.get("step") if state == DONE else None
        if (
            isinstance(final_step, int)
            and t.scored
            and final_step not in t.scored
            and final_step not in unscored
            and final_step > max(t.scored)
        ):
            lines.append(
                f"`{t.key}`: final step {final_step} not scored (latest scored: {max(t.scored)})"
            )
        for step, err in sorted(t.errors.items()):
            lines.append(f"`{t.key}` step {step}: scoring error: {err}")
        row = finals.get(t.key)
        if row is not None and row.get("top1") is None:
            lines.append(f"`{t.key}`: no eval top-1 in metrics.jsonl or status.json")
    return lines


def _notes(trials: list[TrialResults]) -> list[str]:
    """What the trainer recorded in status.json that changes how to read a trial's numbers:
    fewer examples than the config asked for, and checkpoints it moved aside as damaged."""
    lines = []
    for t in trials:
        examples = t.status.get("examples")
        for which, e in (examples if isinstance(examples, dict) else {}).items():
            if isinstance(e, dict) and int(e.get("asked") or 0) > int(e.get("used") or 0):
                lines.append(
                    f"`{t.key}`: {'evaluated' if which == 'eval' else 'trained'} on "
                    f"{e['used']:,} of the {e['asked']:,} {which} examples asked (the split has "
                    f"{int(e.get('split') or 0):,})"
                )
        for d in t.status.get("damaged_checkpoints") or []:
            if isinstance(d, dict):
                lines.append(
                    f"`{t.key}`: checkpoint {d.get('step')} failed its integrity check "
                    f"({d.get('reason')}); moved to {d.get('moved_to')}, training resumed "
                    "from an earlier step"
                )
    return lines


def _best(rows: list[dict], cols: list[str]) -> dict[str, Any] | None:
    best = None
    for r in rows:
        for c in cols:
            v = r.get(c)
            if v is not None and (best is None or v > best["value"]):
                best = {"value": v, "row": r, "column": c}
    return best


def _references(rows: list[dict], bench: str, cats: list[str]) -> dict[str, dict[str, Any]]:
    """Pixel L2 / SSIM on the benchmark: the same for every checkpoint, so the first found.
    ``2afc``: the reference's score per category."""
    out = {}
    for ref in PIXEL_METRICS:
        for r in rows:
            ps = r.get(f"ps_{bench}_{ref}")
            if ps is not None:
                out[ref] = {
                    "ps": ps,
                    "jnd": r.get(f"jnd_{bench}_{ref}"),
                    "2afc": {c: r.get(f"2afc_{bench}_{ref}_{c}") for c in cats},
                }
                break
    return out


def group_mean(scores: dict[str, float | None], cats: list[str]) -> float | None:
    """The unweighted mean of ``cats``' scores (as PS is of every category); None unless all
    are there."""
    return mean_or_none([scores.get(c) for c in cats])


def mean_or_none(vals: list[float | None]) -> float | None:
    return None if not vals or None in vals else sum(vals) / len(vals)


def _categories(names: set[str], bench: str, dist: str) -> tuple[list[str], list[tuple]]:
    """The 2AFC categories in the benchmark's group order (ungrouped ones last), and the groups
    whose every category was scored."""
    found = categories_present(names, bench, dist)
    groups = [
        (g, list(cats), what)
        for g, cats, what in CATEGORY_GROUPS.get(bench, ())
        if all(c in found for c in cats)
    ]
    grouped = [c for _, cats, _ in groups for c in cats]
    return grouped + [c for c in found if c not in grouped], groups


def did_not_learn(t: TrialResults, row: dict[str, Any] | None) -> str | None:
    """Why a finished trial counts as untrained (its final top-1 below chance + CHANCE_MARGIN
    points, chance = 100 / data.num_classes), or None. Such a trial is listed, never ranked."""
    n = t.value("data.num_classes")
    if t.state != DONE or not row or row.get("top1") is None or not isinstance(n, int) or n < 2:
        return None
    chance = 100.0 / n
    if row["top1"] >= chance + CHANCE_MARGIN:
        return None
    return (
        f"final top-1 {row['top1']:.1f}% is within {CHANCE_MARGIN:g} points of chance "
        f"({chance:.1f}%, {n} classes)"
    )


def _select(a: Analysis, ps_col: str | None) -> None:
    """The final rows the statistics use: finished trials' (else every trial's) with both a
    top-1 and a PS, trials that did not learn left out."""
    usable = [
        a.finals[t.key]
        for t in a.trials
        if t.key in a.finals
        and t.key not in a.untrained
        and a.finals[t.key].get("top1") is not None
        and a.finals[t.key].get(ps_col) is not None
    ]
    done = [r for r in usable if r["state"] == DONE]
    untrained = f"; {len(a.untrained)} that did not learn left out (Missing)" if a.untrained else ""
    if done:
        a.analysed = done
        skipped = len(usable) - len(done)
        a.analysed_note = (
            f"the final checkpoint of each finished trial ({len(done)} trials"
            + (f"; {skipped} unfinished trials left out" if skipped else "")
            + untrained
            + ")"
        )
    elif usable:
        a.analysed = usable
        a.analysed_note = (
            f"no trial has finished: the latest scored checkpoint of each trial ({len(usable)})"
        )
    else:  # e.g. only imported trials, which have no top-1
        a.analysed_note = f"no final checkpoint has both a top-1 and a PS (0{untrained})"


def _correlate(a: Analysis) -> None:
    ps_col = a.ps_col
    pts = [(r["top1"], a.ps(r)) for r in a.analysed]
    a.correlations.append(("final checkpoints, all", spearman(*_xy(pts))))
    upper, thr = above_peak(a.analysed)
    a.peak_thresholds["final"] = thr
    a.correlations.append(
        ("final checkpoints, above the peak", spearman(*_xy([(r["top1"], a.ps(r)) for r in upper])))
    )
    every = [r for r in a.rows if r.get("top1") is not None and r.get(ps_col) is not None]
    a.correlations.append(
        ("all scored checkpoints, all", spearman(*_xy([(r["top1"], a.ps(r)) for r in every])))
    )
    upper_all, thr_all = above_peak(every)
    a.peak_thresholds["all"] = thr_all
    a.correlations.append(
        (
            "all scored checkpoints, above the peak",
            spearman(*_xy([(r["top1"], a.ps(r)) for r in upper_all])),
        )
    )
    if len(a.sweeps) > 1:
        for sw in a.sweeps:
            sub = [r for r in a.analysed if r["sweep"] == sw.name]
            a.per_sweep.append((sw.name, spearman(*_xy([(r["top1"], a.ps(r)) for r in sub]))))
    for d in a.distances:
        if d == a.dist:
            continue
        col = f"ps_{a.bench}_{d}"
        pts_d = [(r["top1"], r.get(col)) for r in a.analysed if r.get(col) is not None]
        a.per_distance.append((d, spearman(*_xy(pts_d))))
    idx = pareto_front([p[0] for p in pts], [p[1] for p in pts])
    a.frontier = [a.analysed[i] for i in idx]


def analyse(
    sweeps: list[Sweep],
    rows: list[dict[str, Any]],
    benchmark: str | None = None,
    distance: str | None = None,
) -> Analysis:
    """What the report says. Trials that did not learn (``did_not_learn``) keep their row in the
    trial table and a line in Missing; their rows are left out of every statistic and ranking."""
    names = column_names(rows)
    benches = benchmarks_present(names)
    bench = _choose(benches, benchmark, "benchmark")
    if bench is None:
        configured = _configured_benchmarks(sweeps)
        bench = configured[0] if configured else None
    dists = distances_present(names, bench) if bench else []
    dist = _choose(dists, distance, "distance")
    plans = {sw.name: plan(sw) for sw in sweeps}
    trials = trial_order(sweeps, plans)
    finals = {r["trial"]: r for r in rows if r["final"]}
    untrained = {t.key: why for t in trials if (why := did_not_learn(t, finals.get(t.key)))}
    learned = [r for r in rows if r["trial"] not in untrained] if untrained else rows
    a = Analysis(sweeps, learned, bench, dist, benches, dists, [], trials, plans, finals, [], "")
    a.untrained, a.columns = untrained, names
    a.taps = taps_present(names, bench, dist) if bench and dist else []
    if bench and dist:
        a.categories, a.groups = _categories(names, bench, dist)
    a.missing = [
        f"`{k}`: did not learn: {why}; left out of the correlations, the frontier and the rankings"
        for k, why in untrained.items()
    ] + _missing(trials, finals)
    a.notes = _notes(trials)
    _select(a, a.ps_col)
    if not a.ps_col:
        return a
    _correlate(a)
    a.best = _best(a.rows, [a.ps_col])
    a.best_tap = _best(a.rows, [f"tap_{bench}_{dist}_{tap}" for tap in a.taps])
    a.references = _references(rows, bench, a.categories)
    return a


def _xy(pts: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    return [p[0] for p in pts], [p[1] for p in pts]
