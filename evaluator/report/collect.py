"""Collect a sweep's run directories into one row per (trial, scored checkpoint step), and
write those rows as results.csv.

Reads only the files of docs/file-contracts.md: ``runs/<sweep>/sweep.json`` (optional) and per
trial ``config.json``, ``overrides.json``, ``status.json``, ``metrics.jsonl``,
``perceptual/<step>.json`` and the step directory names under ``checkpoints/``. Nothing here
restores a checkpoint or starts an accelerator.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator.names import BENCHMARK_NAMES, FEATURE_DISTANCES, PIXEL_METRICS
from evaluator.report import parallel
from evaluator.report.columns import (
    clean,
    frequency_columns,
    num,
    probe_columns,
    score_columns,
)

# results.csv lives in results_csv; its writer is re-exported here, where callers look for it
from evaluator.report.results_csv import MODEL_KEYS, csv_columns, write_csv  # noqa: F401
from evaluator.report.stats import natural_key
from sweeps.base import flatten
from trainer import files
from trainer.files import read_json, read_jsonl

# Files or folders whose presence makes a sub-directory of a sweep a trial directory.
TRIAL_MARKERS = ("status.json", "config.json", "overrides.json", "metrics.jsonl", "perceptual")
# The report's default benchmark is the first one present: the study's own (BAPPS) when scored.
PREFERRED_BENCHMARK = "bapps"
BENCHMARK_ORDER = (PREFERRED_BENCHMARK, *(b for b in BENCHMARK_NAMES if b != PREFERRED_BENCHMARK))
DONE = "done"
FROM_SWEEP_JSON = "from sweep.json's axis"


class ReportError(ValueError):
    """Input the report cannot use. The message is one line."""


@dataclass
class TrialResults:
    """What the report reads from one trial directory (``launch.trials.Trial`` is the launcher's
    trial, built from the sweep file)."""

    sweep: str
    name: str  # the trial directory's name
    key: str  # name, or "<sweep>/<name>" when several sweeps are combined
    path: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # flattened config.json
    status: dict[str, Any] = field(default_factory=dict)
    evals: dict[int, dict] = field(default_factory=dict)  # step -> last eval line of that step
    scored: dict[int, dict] = field(default_factory=dict)  # step -> its row (scored_row)
    dynamic: dict[str, dict] = field(default_factory=dict)  # benchmark -> dynamic_range block
    errors: dict[int, str] = field(default_factory=dict)  # step -> scoring error
    checkpoints: list[int] = field(default_factory=list)  # step directories on disk
    exists: bool = True  # False: listed in sweep.json, no directory yet

    @property
    def state(self) -> str:
        if not self.exists:
            return "not started"
        return str(self.status.get("state") or "no status")

    def value(self, key: str) -> Any:
        """The trial's value of a dotted config key (config.json, else its overrides)."""
        if key in self.config:
            return self.config[key]
        return self.overrides.get(key)

    @property
    def unscored_steps(self) -> list[int]:
        return sorted(set(self.checkpoints) - set(self.scored) - set(self.errors))


@dataclass
class Sweep:
    name: str
    path: Path
    preset: str | None
    swept: list[str]  # dotted keys swept, seed included when it is
    swept_from: str  # where ``swept`` came from, for the report text
    trials: list[TrialResults]
    # sweep.json's "axes" (the study sweep): axis name -> {"key": dotted key or None,
    # "trials": [names]}; a trial may sit on several axes (the default recipe on all)
    axes: dict[str, dict[str, Any]] = field(default_factory=dict)
    primary: str | None = None  # the x key when a caller fixes it (one axis of the study)
    axis: str | None = None  # the axis's name, for one axis of a sweep (``axis_sweep``)


def _read_json_safe(path: Path, what: str) -> tuple[Any, str | None]:
    """(content, None), or (None, one-line error) for a file that is not valid JSON."""
    try:
        return read_json(path), None
    except (json.JSONDecodeError, UnicodeDecodeError, OSError) as e:
        return None, f"{what} {path.name} is unreadable ({type(e).__name__})"


def _is_trial_dir(p: Path) -> bool:
    return (
        p.is_dir()
        and not p.name.startswith((".", "_"))
        and any((p / m).exists() for m in TRIAL_MARKERS)
    )


def is_sweep_dir(p: Path) -> bool:
    return p.is_dir() and (
        (p / "sweep.json").is_file() or any(_is_trial_dir(c) for c in p.iterdir())
    )


def _step_files(folder: Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of each ``<step>.json`` in ``folder``, by step (os.listdir where local:
    pathlib's glob and sorting cost seconds over a study's 74,000 records)."""
    if files.is_remote(folder):
        names = [p.name for p in folder.glob("*.json")]
    else:
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return []
    steps = sorted((int(n[:-5]), n) for n in names if n.endswith(".json") and n[:-5].isdigit())
    return [(s, folder / n) for s, n in steps]


def _load_trial(sweep: str, path: Path, key: str, listed_overrides: dict | None) -> TrialResults:
    t = TrialResults(sweep=sweep, name=path.name, key=key, path=path)
    t.exists = path.is_dir()
    if not t.exists:
        t.overrides = dict(listed_overrides or {})
        return t
    overrides, _ = _read_json_safe(path / "overrides.json", "overrides")
    t.overrides = dict(overrides or listed_overrides or {})
    config, _ = _read_json_safe(path / "config.json", "config")
    t.config = flatten(config) if isinstance(config, dict) else {}
    status, err = _read_json_safe(path / "status.json", "status")
    t.status = status if isinstance(status, dict) else {}
    if err:
        t.status = {"state": "no status", "error": err}
    for rec in read_jsonl(path / "metrics.jsonl"):
        if rec.get("kind") == "eval" and isinstance(rec.get("step"), int):
            t.evals[rec["step"]] = rec  # later lines win (a resumed run rewrites steps)
    for step, f in _step_files(path / "perceptual"):
        rec, err = _read_json_safe(f, "perceptual")
        if err or not isinstance(rec, dict):
            t.errors[step] = err or f"perceptual {f.name} is not a JSON object"
        elif rec.get("error"):
            t.errors[step] = str(rec["error"]).splitlines()[0]
        elif not rec.get("benchmarks"):
            t.errors[step] = f"perceptual {f.name} has no benchmarks"
        else:
            t.scored[step] = scored_row(t, step, rec)
    ckpt = path / "checkpoints"
    if ckpt.is_dir():
        # Orbax renames a step's temporary directory to the bare step number when it is final.
        t.checkpoints = sorted(int(c.name) for c in ckpt.iterdir() if c.name.isdigit())
    return t


def _derive_swept(trials: list[TrialResults]) -> tuple[list[str], str]:
    """The overridden keys whose values (as the trials ran them) differ between trials."""
    present = [t for t in trials if t.exists] or trials
    for source, get in (
        ("overrides.json", lambda t: t.overrides),
        ("config.json", lambda t: t.config),
    ):
        keys = sorted({k for t in trials for k in get(t)})
        if not keys:
            continue
        varying = [
            k for k in keys if len({json.dumps(t.value(k), sort_keys=True) for t in present}) > 1
        ]
        if source == "overrides.json" and not varying and len(present) == 1:
            varying = keys  # a single trial: its overrides are what was chosen
        if varying:
            return varying, f"derived from the trials' {source}"
    return [], "none found"


def load_sweep(path: Path, key_prefix: str = "", workers: int = 1) -> Sweep:
    """Read one sweep directory (its trials on ``workers`` processes). ``key_prefix`` makes
    trial keys unique across sweeps."""
    meta, err = _read_json_safe(path / "sweep.json", "sweep")
    if err:
        raise ReportError(f"{path}: {err}; it must be the launcher's JSON object")
    if meta is not None and not isinstance(meta, dict):
        raise ReportError(f"{path}/sweep.json is not a JSON object")
    meta = meta or {}
    listed: dict[str, dict] = {}
    for entry in meta.get("trials") or []:  # {"name", "overrides"} objects, or bare names
        if isinstance(entry, dict) and entry.get("name"):
            listed[str(entry["name"])] = entry.get("overrides") or {}
        elif isinstance(entry, str) and entry:
            listed[entry] = {}
    names = sorted({c.name for c in path.iterdir() if _is_trial_dir(c)} | set(listed))
    name = str(meta.get("sweep") or path.name)
    args = [(name, path / n, f"{key_prefix}{n}", listed.get(n)) for n in names]
    trials = parallel.map_trials(_load_trial, args, workers)
    axis = meta.get("axis")
    if isinstance(axis, str):
        axis = [axis]
    if axis:
        swept, source = [str(a) for a in axis], FROM_SWEEP_JSON
    else:
        swept, source = _derive_swept(trials)
    return Sweep(name, path, meta.get("preset"), swept, source, trials, _axes(path, meta))


def _axes(path: Path, meta: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """sweep.json's ``axes``, checked: ``{name: {"key": str or null, "trials": [str]}}``."""
    axes = meta.get("axes") or {}
    bad = f'{path}/sweep.json: \'axes\' must map axis names to {{"key", "trials": [names]}}'
    if not isinstance(axes, dict):
        raise ReportError(bad)
    out = {}
    for name, ax in axes.items():
        if (
            not isinstance(ax, dict)
            or not isinstance(ax.get("trials"), list)
            or not all(isinstance(t, str) for t in ax["trials"])
            or not isinstance(ax.get("key"), (str, type(None)))
        ):
            raise ReportError(f"{bad}; axis {name!r} is not")
        out[str(name)] = {"key": ax.get("key"), "trials": list(dict.fromkeys(ax["trials"]))}
    return out


def axis_sweep(sw: Sweep, name: str) -> Sweep:
    """One axis of a study sweep as a sweep of its own: its trials, the keys that differ
    between them, and its key as the x-axis."""
    ax = sw.axes[name]
    names = set(ax["trials"])
    trials = [t for t in sw.trials if t.name in names]
    swept, source = _derive_swept(trials)
    if ax["key"] and ax["key"] not in swept:
        swept = [ax["key"], *swept]
    return Sweep(sw.name, sw.path, sw.preset, swept, source, trials, {}, ax["key"], name)


def load_sweeps(path: Path, combine_all: bool, workers: int = 1) -> list[Sweep]:
    """The sweep at ``path``, or with ``combine_all`` every sweep directly under ``path``
    (trials read on ``workers`` processes)."""
    path = files.path(path)
    if not path.is_dir():
        raise ReportError(f"{path}: no such directory; expected runs/<sweep> (or runs with --all)")
    if not combine_all:
        if not is_sweep_dir(path):
            if any(is_sweep_dir(c) for c in path.iterdir()):
                raise ReportError(
                    f"{path} holds sweeps, not trials; pass one sweep (runs/<sweep>) or add --all"
                )
            raise ReportError(
                f"{path} holds no trial directories (runs/<sweep>/<trial>/status.json, ...) "
                "and no sweep.json"
            )
        return [load_sweep(path, workers=workers)]
    sweeps = [
        load_sweep(c, key_prefix=f"{c.name}/", workers=workers)
        for c in sorted(path.iterdir())
        if not c.name.startswith((".", "_")) and is_sweep_dir(c)
    ]
    if not sweeps:
        raise ReportError(f"{path} holds no sweep directories (runs/<sweep>/sweep.json or trials)")
    return sweeps


# ----------------------------------------------------------------------------- rows


def nearest_eval(trial: TrialResults, step: int) -> dict | None:
    """The eval at ``step``, else the nearest one (the earlier on a tie), else status's last."""
    if step in trial.evals:
        return trial.evals[step]
    if trial.evals:
        best = min(trial.evals, key=lambda s: (abs(s - step), s))
        return trial.evals[best]
    last = trial.status.get("last_eval")
    if isinstance(last, dict) and isinstance(last.get("step"), int):
        return {
            "step": last["step"],
            "epoch": last.get("epoch"),
            "eval_top1": last.get("top1"),
            "eval_top5": last.get("top5"),
        }
    return None


def scored_row(trial: TrialResults, step: int, rec: dict[str, Any]) -> dict[str, Any]:
    """The row of one scored step, from its perceptual record (then dropped: at the study's
    scale the records would hold gigabytes); ``trial_rows`` adds the swept values."""
    ev = nearest_eval(trial, step)
    model = rec.get("model") if isinstance(rec.get("model"), dict) else {}
    row: dict[str, Any] = {"sweep": trial.sweep, "trial": trial.key, "state": trial.state}
    for m in MODEL_KEYS:
        row[f"model_{m}"] = trial.config.get(f"model.{m}", model.get(m))
    row["seed"] = trial.value("seed")
    epoch = num(rec.get("epoch"))
    if epoch is None and ev is not None and ev.get("step") == step:
        epoch = num(ev.get("epoch"))
    row["epoch"] = epoch
    row["step"] = step
    top1 = num(ev.get("eval_top1")) if ev else None
    top5 = num(ev.get("eval_top5")) if ev else None
    row["top1"] = None if top1 is None else 100.0 * top1
    row["top5"] = None if top5 is None else 100.0 * top5
    row["top1_step"] = ev.get("step") if ev else None
    for bench, b in (rec.get("benchmarks") or {}).items():
        if isinstance(b, dict):
            row.update(score_columns(clean(bench), b))
            row.update(probe_columns(clean(bench), b))
            if isinstance(b.get("dynamic_range"), dict):
                trial.dynamic.setdefault(clean(bench), b["dynamic_range"])
    row.update(frequency_columns(rec.get("frequency")))
    return row


def trial_rows(trial: TrialResults, swept: list[str]) -> list[dict[str, Any]]:
    """One row per scored step of ``trial`` (the rows ``scored`` holds, with the swept
    values and ``final`` set)."""
    rows = []
    last = max(trial.scored) if trial.scored else None
    for step in sorted(trial.scored):
        row = trial.scored[step]
        for k in swept:
            row[k] = trial.value(k)
        row["final"] = step == last
        rows.append(row)
    return rows


def build_rows(sweeps: list[Sweep]) -> list[dict[str, Any]]:
    rows = []
    for sw in sweeps:
        for t in sw.trials:
            rows.extend(trial_rows(t, sw.swept))
    return rows


def column_names(rows: list[dict[str, Any]] | set[str]) -> set[str]:
    """Every column any row has (a set given is returned as is: compute it once per report)."""
    return rows if isinstance(rows, set) else set().union(*rows)


def benchmarks_present(rows: list[dict[str, Any]] | set[str]) -> list[str]:
    found = {k.split("_")[1] for k in column_names(rows) if k.startswith("ps_")}
    return [b for b in BENCHMARK_ORDER if b in found] + sorted(found - set(BENCHMARK_ORDER))


def distances_present(rows: list[dict[str, Any]] | set[str], bench: str) -> list[str]:
    prefix = f"ps_{bench}_"
    found = {k[len(prefix) :] for k in column_names(rows) if k.startswith(prefix)}
    found -= set(PIXEL_METRICS)
    return [d for d in FEATURE_DISTANCES if d in found] + sorted(found - set(FEATURE_DISTANCES))


def categories_present(rows: list[dict[str, Any]] | set[str], bench: str, dist: str) -> list[str]:
    """The benchmark's 2AFC categories scored with ``dist`` (column-safe names), natural order."""
    prefix = f"2afc_{bench}_{dist}_"
    found = {k[len(prefix) :] for k in column_names(rows) if k.startswith(prefix)}
    return sorted(found, key=natural_key)


EARLY_TAPS = ("input", "stem", "embed", "embedding", "patch_embed")  # before numbered taps


def taps_present(rows: list[dict[str, Any]] | set[str], bench: str, dist: str) -> list[str]:
    """Tap names in network order: stem-like taps, then numbered ones (stage2 before stage10)."""
    prefix = f"tap_{bench}_{dist}_"
    found = {k[len(prefix) :] for k in column_names(rows) if k.startswith(prefix)}
    return sorted(found, key=lambda t: (t not in EARLY_TAPS, natural_key(t)))
