"""The paper's Table 1 from your own runs: per architecture, the Perceptual Score at the default
recipe, the best gain from changing one axis (width, depth, weight decay, central crop, training
steps / early stopping) and the best PS overall, each with the trial and checkpoint behind it,
beside the paper's values (Kumar et al., "Do better ImageNet classifiers assess perceptual
similarity better?", TMLR 2022, Table 1; arXiv 2203.04946).

How each cell is read from the runs (the paper does not spell out its rule; ours):

* an architecture's trials: ResNet by depth, ViT by variant (a ViT with fewer blocks is still
  ViT-B/8), EfficientNet by variant, on one data set (``--all`` may mix embedded and paper
  runs: the most common one with a default-recipe trial); trials that did not learn are left
  out;
* its **default recipe**: on every config key that differs between its trials, the most common
  value (each axis moves one key away from the default, so the default wins; a tie, one axis
  run alone, goes to the recipe's value, ``sweeps.recipes``); the default trials match it on
  all those keys. **default** = their final checkpoints' PS, mean over seeds;
* a column's axis: the sweep.json ``axes`` entry with that key (the ``study`` sweep), else a
  sweep whose x key it is (``--all`` over the 1-D sweeps); not there: "not run";
* **width, depth**: that axis's trials with a smaller value than the default ("scaling down";
  a ViT's depth 0 = the variant's full depth); **weight decay**: any other value (PS rises on
  both sides of the default); **central crop**: ``data.crop=center``; **train steps**: every
  scored checkpoint of the epochs axis's shorter schedules and every earlier checkpoint of the
  default trials (early stopping). Each grid point (and step) is the mean over its seeds; the
  cell is the best point's PS minus **default** (negative when nothing beats the default);
* **best** = the default plus the largest gain, with the trial behind it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from evaluator.report.analyse import Analysis
from evaluator.report.collect import TrialResults
from sweeps.base import config_from, flatten
from sweeps.recipes import recipe

FIVE = ("resnet-6", "resnet-50", "resnet-200", "vit-B/8", "vit-L/4")
# column -> (config key, which values count): "down" smaller, "other" any other, "center"
COLUMNS = {
    "width": ("model.width", "down"),
    "depth": ("model.depth", "down"),
    "weight decay": ("train.weight_decay", "other"),
    "central crop": ("data.crop", "center"),
    "train steps": ("train.epochs", "down"),
}
# Kumar et al. 2022, Table 1 (BAPPS 2AFC val, Local distance): default, the five gains, best;
# None = "-" in the paper (a ResNet's depth is its architecture).
PAPER = {
    "resnet-6": (69.1, 0.4, None, 0.3, 0.0, 0.5, 69.6),
    "resnet-50": (68.2, 0.4, None, 0.7, 0.7, 1.5, 69.7),
    "resnet-200": (67.6, 0.2, None, 1.3, 1.2, 1.9, 69.5),
    "vit-B/8": (67.6, 1.1, 1.0, 1.3, 0.9, 1.1, 68.9),
    "vit-L/4": (67.9, 0.4, 0.4, -0.1, -1.1, 0.5, 68.4),
}
PAPER_SOURCE = "Kumar et al., TMLR 2022, Table 1 (arXiv 2203.04946), BAPPS val"
NOT_RUN = "not run"


@dataclass
class Cell:
    value: float | None  # PS (default, best) or the gain (columns)
    trial: str = ""  # the trial behind it (the first seed's)
    step: int | None = None
    seeds: int = 0
    note: str = ""  # why there is no value


@dataclass
class Row:
    arch: str
    default: Cell
    cells: dict[str, Cell] = field(default_factory=dict)
    best: Cell | None = None


def arch_of(t: TrialResults) -> str:
    name = t.value("model.name") or "model"
    if name == "resnet" or not t.value("model.variant"):
        return f"{name}-{t.value('model.depth')}"
    return f"{name}-{t.value('model.variant')}"


def _text(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _recipe_default(t: TrialResults, key: str) -> Any:
    preset = "paper" if str(t.config.get("data.name", "")).startswith("imagenet") else "embedded"
    variant = str(t.value("model.variant") or "")
    overrides = {**recipe(t.value("model.name") or "resnet", preset, variant)}
    overrides.update({f"model.{k}": t.value(f"model.{k}") for k in ("depth", "variant")})
    return flatten(config_from(preset, overrides).to_dict()).get(key)


def defaults(trials: list[TrialResults]) -> dict[str, Any]:
    """The default recipe of one architecture's trials: key -> value (module docstring)."""
    keys = {k for t in trials for k in t.config} - {"seed"}
    out = {}
    for k in sorted(keys):
        counts = Counter(_text(t.value(k)) for t in trials)
        if len(counts) < 2:
            continue
        top = max(counts.values())
        tied = [v for v, c in counts.items() if c == top]
        if len(tied) > 1:
            ref = _text(_recipe_default(trials[0], k))
            tied = [ref] if ref in tied else tied
        out[k] = json.loads(tied[0])
    return out


def _axes_by_key(a: Analysis) -> dict[str, set[str]]:
    """config key -> trial keys on that axis (sweep.json's axes, else a sweep's x key)."""
    out: dict[str, set[str]] = {}
    for sw in a.sweeps:
        prefix = f"{sw.name}/" if len(a.sweeps) > 1 else ""
        if sw.axes:
            for ax in sw.axes.values():
                if ax["key"]:
                    out.setdefault(ax["key"], set()).update(prefix + n for n in ax["trials"])
        else:
            p = a.plans[sw.name].primary
            if p:
                out.setdefault(p, set()).update(t.key for t in sw.trials)
    return out


def _counts(key: str, how: str, v: Any, default: Any, axis_values: list[Any]) -> bool:
    if how == "center":
        return v == "center"
    if how == "other" or not isinstance(v, (int, float)) or not isinstance(default, (int, float)):
        return _text(v) != _text(default)
    if key == "model.depth" and default == 0:  # a ViT's variant depth: the largest run
        return v < max(x for x in axis_values if isinstance(x, (int, float)))
    return v < default


def _best_point(groups: dict[tuple, list[tuple[str, int, float]]]) -> Cell | None:
    """Mean PS per grid point (over seeds); the best point as a Cell (its PS, first trial)."""
    best = None
    for pts in groups.values():
        mean = sum(p[2] for p in pts) / len(pts)
        if best is None or mean > best.value:
            best = Cell(mean, pts[0][0], pts[0][1], len(pts))
    return best


def _grid_point(t: TrialResults) -> str:
    return _text({k: v for k, v in sorted(t.overrides.items()) if k != "seed"})


def _row(
    a: Analysis,
    arch: str,
    trials: list[TrialResults],
    axes: dict[str, set[str]],
    by_trial: dict[str, list[dict]],
) -> Row:
    learned = [t for t in trials if t.key not in a.untrained]
    d = defaults(learned)
    default = [t for t in learned if all(_text(t.value(k)) == _text(v) for k, v in d.items())]
    finals = [(t, a.finals[t.key]) for t in default if a.ps(a.finals.get(t.key) or {}) is not None]
    if not finals:
        return Row(arch, Cell(None, note="no default-recipe trial scored"))
    ps0 = sum(a.ps(r) for _, r in finals) / len(finals)
    row = Row(arch, Cell(ps0, finals[0][0].key, finals[0][1]["step"], len(finals)))
    for col, (key, how) in COLUMNS.items():
        if key not in axes:
            row.cells[col] = Cell(None, note=NOT_RUN)
            continue
        on_axis = [t for t in learned if t.key in axes[key]]
        values = [t.value(key) for t in on_axis]
        groups: dict[tuple, list[tuple[str, int, float]]] = {}
        for t in on_axis:
            if not _counts(key, how, t.value(key), d.get(key, t.value(key)), values):
                continue
            steps = by_trial.get(t.key, []) if col == "train steps" else [a.finals.get(t.key)]
            for r in steps:
                if r and a.ps(r) is not None:
                    g = (_grid_point(t), r["step"] if col == "train steps" else 0)
                    groups.setdefault(g, []).append((t.key, r["step"], a.ps(r)))
        if col == "train steps":  # early stopping: the default trials' earlier checkpoints
            for t, final in finals:
                for r in by_trial.get(t.key, []):
                    if r["step"] < final["step"] and a.ps(r) is not None:
                        groups.setdefault(("default", r["step"]), []).append((t.key, r["step"], a.ps(r)))  # fmt: skip
        best = _best_point(groups)
        if best is None:
            row.cells[col] = Cell(None, note="no smaller value run" if how == "down" else "no other value run")  # fmt: skip
        else:
            best.value -= ps0
            row.cells[col] = best
    gains = [c for c in row.cells.values() if c.value is not None]
    top = max(gains, key=lambda c: c.value, default=None)
    if top is None or top.value <= 0:
        row.best = Cell(ps0, row.default.trial, row.default.step, row.default.seeds)
    else:
        row.best = Cell(ps0 + top.value, top.trial, top.step, top.seeds)
    return row


def table1(a: Analysis) -> list[Row] | None:
    """Table 1's rows for the five architectures, or None when none of them has a default
    trial and a column with a value (a sweep that is not about them)."""
    if not a.ps_col:
        return None
    by_arch: dict[str, list[TrialResults]] = {}
    for t in a.trials:
        if t.exists:
            by_arch.setdefault(arch_of(t), []).append(t)
    axes = _axes_by_key(a)
    by_trial: dict[str, list[dict]] = {}  # each trial's scored rows
    for r in a.rows:
        by_trial.setdefault(r["trial"], []).append(r)
    rows = []
    for arch in FIVE:  # --all may mix embedded and paper runs: one data set per row
        trials = by_arch.get(arch, [])
        row = _row(a, arch, [], axes, by_trial)
        for data, _ in Counter(str(t.value("data.name")) for t in trials).most_common():
            mine = [t for t in trials if str(t.value("data.name")) == data]
            row = _row(a, arch, mine, axes, by_trial)
            if row.default.value is not None:
                break
        rows.append(row)
    if not any(any(c.value is not None for c in r.cells.values()) for r in rows):
        return None
    return rows


def _gain(c: Cell) -> str:
    return f"{c.value:+.2f}" if c.value is not None else c.note


def _paper(v: float | None, signed: bool) -> str:
    if v is None:
        return "-"
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def _behind(c: Cell) -> str:
    seeds = f", mean of {c.seeds} seeds" if c.seeds > 1 else ""
    return f"`{c.trial}` step {c.step}{seeds}"


def render(rows: list[Row], a: Analysis) -> list[str]:
    """The section's lines: ours beside the paper's, then the trial and checkpoint behind each
    cell."""
    cols = list(COLUMNS)
    out = ["", "## Table 1: PS at the default recipe and the gain from each axis", ""]
    out.append(
        f"Ours (`{a.dist}` distance on {a.bench}) beside the paper's in brackets ({PAPER_SOURCE})"
        + ("" if a.bench == "bapps" else f"; {a.bench} is not BAPPS, so only the pattern compares")
        + ". Gains are the best PS reached by changing that axis alone minus the default's "
        "(width, depth, train steps: smaller values only; train steps includes early stopping "
        "of the default run); rules in `evaluator/report/table1.py`."
    )
    out.append("")
    head = ["model", "default", *cols, "best"]
    out.append("| " + " | ".join(head) + " |")
    out.append("|" + "|".join(" --- " for _ in head) + "|")
    detail = []
    for r in rows:
        paper = PAPER[r.arch]
        line = [r.arch, f"{r.default.value:.2f}" if r.default.value is not None else r.default.note]
        line[1] += f" ({_paper(paper[0], False)})"
        for i, col in enumerate(cols):
            line.append(f"{_gain(r.cells[col])} ({_paper(paper[i + 1], True)})" if r.cells else
                        f"– ({_paper(paper[i + 1], True)})")  # fmt: skip
        best = r.best.value if r.best else None
        line.append(f"{best:.2f} ({paper[-1]:.1f})" if best is not None else f"– ({paper[-1]:.1f})")
        out.append("| " + " | ".join(line) + " |")
        if r.default.value is not None:
            detail.append([r.arch, "default", _behind(r.default)])
            detail += [[r.arch, col, _behind(c)] for col, c in r.cells.items() if c.trial]
            detail.append([r.arch, "best", _behind(r.best)])
    if detail:
        out += ["", "Behind each cell (the best grid point's first trial and checkpoint):", ""]
        out += ["| model | cell | trial, checkpoint |", "| --- | --- | --- |"]
        out += ["| " + " | ".join(d) + " |" for d in detail]
    return out
