"""The evaluator's per-step records, ``perceptual/<step>.json`` (docs/file-contracts.md): where
they live, reading one, what a step still lacks, and the one-line forms the job prints."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evaluator import benchmarks as bm
from evaluator.probes import Settings
from trainer import checkpoint, files, integrity
from trainer.files import read_json, read_jsonl

PERCEPTUAL_DIR = "perceptual"


def result_path(trial: Path, step: int) -> Path:
    return trial / PERCEPTUAL_DIR / f"{step}.json"


def read_result(trial: Path, step: int) -> dict[str, Any] | None:
    """``perceptual/<step>.json`` when it is a well-formed result or error record, else None."""
    try:
        rec = json.loads(result_path(trial, step).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if not isinstance(rec, dict) or rec.get("step") != step:
        return None
    if rec.get("error") or isinstance(rec.get("benchmarks"), dict):
        return rec
    return None


def missing_benchmarks(
    rec: dict[str, Any] | None,
    names: Sequence[str],
    retry_errors: bool = False,
    settings: Settings | None = None,
) -> list[str]:
    """Which of ``names`` a step still needs scored on, given its result ``rec``: all of them
    without a result (or with an error record, under ``retry_errors``), none with an error
    record otherwise, else those the result lacks or holds from an older proxy version, or
    (given the trial's ``settings``) without the probes or the ``lin`` scores they ask for."""
    if rec is None or (rec.get("error") and retry_errors):
        return list(names)
    if rec.get("error"):
        return []
    have = rec["benchmarks"]
    return [
        n
        for n in names
        if n not in have
        or bm.is_outdated(n, have[n])
        or (settings is not None and not settings.block_complete(have[n]))
    ]


def epoch_of(trial: Path, step: int) -> float | None:
    """``step`` in epochs, from the steps-per-epoch ratio of the trial's metrics.jsonl."""
    for rec in reversed(read_jsonl(trial / "metrics.jsonl")):
        s, e = rec.get("step"), rec.get("epoch")
        if isinstance(s, (int, float)) and isinstance(e, (int, float)) and s > 0 and e > 0:
            return round(step * e / s, 4)
    return None


def error_line(e: BaseException) -> str:
    if isinstance(e, integrity.Damaged):
        return " ".join(str(e).split())[:400]
    return checkpoint.read_error(e).split(" [tensorstore_spec")[0]


def made_for_another_save(rec: dict[str, Any] | None, trial: Path, step: int) -> bool:
    """An error record made for an earlier save of this step (the trainer moved that one aside
    and saved the step again): it no longer speaks for the checkpoint there."""
    if not rec or not rec.get("error") or "checkpoint_id" not in rec:
        return False
    return rec["checkpoint_id"] != integrity.fingerprint(
        checkpoint.checkpoint_dir(trial) / str(step)
    )


def _headline(block: dict[str, Any]) -> str:
    """A distance block's PS (2 decimals) or, on a MOS benchmark, its SROCC (3)."""
    if "ps" in block:
        return f"{block['ps']:.2f}"
    return "–" if block.get("srocc") is None else f"{block['srocc']:.3f}"


def summary(trial: str, step: int, rec: dict[str, Any]) -> str:
    if rec.get("error"):
        return f"{trial} step {step}: ERROR {rec['error']}"
    parts = []
    for name, b in rec["benchmarks"].items():
        d = b["distances"]
        first = next(iter(d))
        what = "PS" if "ps" in d[first] else "SROCC"  # TID2013, KADID-10k: evaluator.mos
        others = ", ".join(f"{k} {_headline(v)}" for k, v in d.items() if k != first)
        parts.append(
            f"{name} {what} {first} {_headline(d[first])}" + (f" ({others})" if others else "")
        )
    return f"{trial} step {step}: " + "; ".join(parts) + f" [{rec['wall_time_s']:.1f} s]"


def scalars(rec: dict[str, Any]) -> dict[str, float]:
    """A scored step's TensorBoard scalars (trainer/events.py), tagged ``perceptual/<benchmark>/
    ps_<distance>`` (and ``jnd_<distance>``), ``probes/<benchmark>/margin_<distance>``,
    ``relative_margin_<distance>``, ``best_tap_ps_<distance>``, ``entropy``, and
    ``probes/frequency/{clean_top1,low_slope}``; {} for an error record."""
    out: dict[str, float] = {}
    if rec.get("error"):
        return out

    def put(tag: str, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[tag] = float(value)

    for name, b in (rec.get("benchmarks") or {}).items():
        for dist, d in (b.get("distances") or {}).items():
            put(f"perceptual/{name}/ps_{dist}", d.get("ps"))
            put(f"perceptual/{name}/jnd_{dist}", d.get("jnd"))
        probes = b.get("probes") or {}
        for dist, m in ((probes.get("margin") or {}).get("distances") or {}).items():
            pooled = ((m or {}).get("pooled") or {}).get("all") or {}
            put(f"probes/{name}/margin_{dist}", pooled.get("margin"))
            put(f"probes/{name}/relative_margin_{dist}", pooled.get("relative"))
        for dist, best in (probes.get("best_tap") or {}).items():
            put(f"probes/{name}/best_tap_ps_{dist}", (best or {}).get("ps"))
        put(f"probes/{name}/entropy", (probes.get("entropy") or {}).get("mean"))
    freq = rec.get("frequency") or {}
    put("probes/frequency/clean_top1", freq.get("clean_top1"))
    put("probes/frequency/low_slope", freq.get("low_slope"))
    return out


# ----------------------------------------------------------------------------- trial directories


def find_trials(runs: Path) -> list[Path]:
    return sorted(p.parent for p in runs.glob("*/config.json"))


def trial_state(trial: Path) -> str | None:
    st = read_json(trial / "status.json", default=None)
    return st.get("state") if isinstance(st, dict) else None


def last_activity(trial: Path) -> float:
    """The newest modification time (epoch seconds) among what a live trainer keeps writing:
    status.json, metrics.jsonl, its log, and its checkpoint step directories (not the
    checkpoint directory itself: this job's snapshots change that); 0.0 when none exists."""
    paths = [trial / name for name in ("status.json", "metrics.jsonl", "train.log")]
    ckpts = trial / "checkpoints"
    if ckpts.is_dir():
        paths += [p for p in ckpts.iterdir() if p.name != checkpoint.SNAPSHOTS]
    times = [0.0]
    for p in paths:
        try:
            times.append(files.mtime(p))
        except OSError:  # gone meanwhile (retention) or never written
            pass
    return max(times)
