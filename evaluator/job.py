"""The evaluator job: score every checkpoint of a sweep, as its own process beside training.

For each trial directory under ``runs/<sweep>`` (one holding ``config.json``) and each finalised
checkpoint step (``trainer.checkpoint.list_steps``) without ``perceptual/<step>.json``:

1. snapshot the step directory into ``checkpoints/_SNAPSHOTS/<step>`` (orbax's snapshot location,
   see ``orbax.checkpoint.checkpoint_utils``) with hard links, so the trainer deleting the step
   meanwhile cannot pull files from under the restore; a step deleted before the snapshot is
   skipped;
2. restore it read-only from the snapshot, score it on the benchmarks, release the snapshot;
3. write ``perceptual/<step>.json`` atomically (docs/file-contracts.md); an unreadable checkpoint
   gets a record with ``"error"`` instead, and the job moves on (``--retry-errors`` tries such
   steps again).

A step whose result lacks one of the benchmarks asked for now (say BAPPS added after a sweep
scored on the proxy), or holds the proxy from an older version, is scored on those only, and
they are merged into its result.
The result file is the only state: a job killed at any point and restarted redoes exactly the
steps without a complete one. ``--watch`` polls until every trial's status.json says done / failed /
diverged and nothing is left to score. A trial that says ``running`` but whose files (status.json,
metrics.jsonl, checkpoints) have not changed for ``--stale-after`` seconds (default an hour) is
taken as ended too: its process was killed without a word (``kill -9``, a node lost, a job
cancelled), and the watcher would otherwise hold its machine until a time limit. Pending and
preempted trials are waited for: a queue may start or requeue them hours later.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator import benchmarks as bm
from evaluator.analyses import Analyses, needs_frequency
from evaluator.bapps import Benchmark, BenchmarkError
from evaluator.distances import FEATURE_DISTANCES, PIXEL_METRICS
from evaluator.probes import Settings
from evaluator.proxy import default_dir as proxy_default_dir
from trainer import checkpoint
from trainer.files import atomic_write_json, read_json, read_jsonl

TERMINAL = ("done", "failed", "diverged")
PERCEPTUAL_DIR = "perceptual"


class JobError(ValueError):
    """Bad job arguments (one line)."""


@dataclass
class JobOptions:
    runs: Path
    watch: bool = False
    benchmarks: tuple[str, ...] | None = None  # None: each trial's perceptual.benchmarks
    bapps_dir: str | None = None  # None: each trial's perceptual.bapps_dir
    poll_seconds: float = 30.0
    retry_errors: bool = False  # score steps whose result is an error record again
    stale_after: float = (
        3600.0  # --watch: a "running" trial unchanged this long has ended; 0: never
    )
    log: Callable[[str], None] = field(default=lambda s: print(s, flush=True))


def find_trials(runs: Path) -> list[Path]:
    return sorted(p.parent for p in runs.glob("*/config.json"))


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


def _trial_state(trial: Path) -> str | None:
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
            times.append(p.stat().st_mtime)
        except OSError:  # gone meanwhile (retention) or never written
            pass
    return max(times)


def _epoch_of(trial: Path, step: int) -> float | None:
    """``step`` in epochs, from the steps-per-epoch ratio of the trial's metrics.jsonl."""
    for rec in reversed(read_jsonl(trial / "metrics.jsonl")):
        s, e = rec.get("step"), rec.get("epoch")
        if isinstance(s, (int, float)) and isinstance(e, (int, float)) and s > 0 and e > 0:
            return round(step * e / s, 4)
    return None


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()).split(" [tensorstore_spec")[0]
    return f"{type(e).__name__}: {text}"[:400]


# ----------------------------------------------------------------------------- the job


class Evaluator:
    """Holds loaded benchmarks and their pixel reference scores across trials and steps."""

    def __init__(self, opts: JobOptions):
        self.opts = opts
        self._benches: dict[tuple[str, ...], Benchmark] = {}
        self._refs: dict[tuple[str, str], dict[str, Any]] = {}
        self.analyses = Analyses(opts.log)  # probes, dynamic range, frequency, calibration
        # Steps this job tried whose result stayed incomplete (an error record again, or new
        # benchmarks that could not be scored): not tried again until the job restarts, so a
        # --watch job still ends.
        self._tried: set[tuple[Path, int]] = set()
        self._stale: set[Path] = set()  # running trials already reported as stale

    # -- benchmarks ---------------------------------------------------------------------------

    def trial_benchmarks(self, cfg: dict[str, Any]) -> list[tuple[str, str]]:
        """``[(name, directory)]`` a trial is scored on."""
        perc = cfg.get("perceptual") or {}
        names = self.opts.benchmarks or tuple(
            b for b in str(perc.get("benchmarks") or "proxy").split(",") if b
        )
        out = []
        for name in names:
            if name == "proxy":
                out.append((name, str(proxy_default_dir(cfg))))
            elif name == "bapps":
                d = (
                    self.opts.bapps_dir
                    if self.opts.bapps_dir is not None
                    else perc.get("bapps_dir")
                )
                if not d:
                    raise BenchmarkError(
                        "benchmark bapps needs a directory: pass --bapps-dir=DIR or set "
                        "perceptual.bapps_dir (python -m evaluator.bapps prints the download commands)"
                    )
                out.append((name, str(d)))
            else:
                raise JobError(
                    f"benchmark {name!r} is unknown; allowed: {', '.join(bm.BENCHMARK_NAMES)}"
                )
        return out

    def benchmark(self, key: tuple[str, str], split: str = "val") -> Benchmark:
        """The benchmark ``key`` = (name, directory), its ``val`` split (scored) or its
        ``train`` split (the ``lin`` calibration), loaded once per job."""
        full = (*key, split) if split != "val" else key
        if full not in self._benches:
            t0 = time.time()
            self._benches[full] = bm.load_benchmark(*key, split=split)
            b = self._benches[full]
            n = sum(len(t) for t in b.twoafc.values()) + sum(len(j) for j in b.jnd.values())
            what = key[0] if split == "val" else f"{key[0]} {split}"
            self.opts.log(f"loaded {what} from {key[1]}: {n} examples ({time.time() - t0:.1f} s)")
        return self._benches[full]

    def reference(self, key: tuple[str, str]) -> dict[str, Any]:
        if key not in self._refs:
            b = self.benchmark(key)
            self._refs[key] = {m: bm.score_pixel(b, m) for m in PIXEL_METRICS}
        return self._refs[key]

    # -- one step -----------------------------------------------------------------------------

    def score_step(self, trial: Path, step: int) -> dict[str, Any] | None:
        """Score ``step`` on the benchmarks its result lacks and write ``perceptual/<step>.json``
        (merged with what it already held); None when the step vanished first."""
        from evaluator.features import ScoringModel, read_trial_config

        t0 = time.time()
        cfg = read_trial_config(trial)
        perc = cfg.get("perceptual") or {}
        keys = self.trial_benchmarks(cfg)
        old = read_result(trial, step)
        # ``pending`` decides whether an error record is tried again; once here, it is.
        settings = Settings.from_config(perc)
        todo = missing_benchmarks(old, [name for name, _ in keys], True, settings)
        frequency = needs_frequency(None if old and old.get("error") else old, settings)
        self._tried.add((trial, step))
        keys = [k for k in keys if k[0] in todo]
        distances = tuple(
            d for d in str(perc.get("distances") or ",".join(FEATURE_DISTANCES)).split(",") if d
        )
        ckpt_dir = checkpoint.checkpoint_dir(trial)
        record: dict[str, Any] = {
            "step": step,
            "epoch": _epoch_of(trial, step),
            "trial": trial.name,
            "model": cfg["model"],
            "error": None,
        }
        snap = None
        try:
            snap = checkpoint.snapshot(ckpt_dir, step)
            if snap is None:
                return None
            sm = ScoringModel.from_checkpoint(
                trial, step, ckpt_dir=snap, batch_size=int(perc.get("batch_size") or 256)
            )
        except Exception as e:  # any unreadable checkpoint becomes an error record
            if step not in checkpoint.list_steps(ckpt_dir):
                return None
            record["error"] = _one_line(e)
        finally:
            if snap is not None:
                checkpoint.release_snapshot(ckpt_dir, step)
        if record["error"] is None:
            record["resolution"] = sm.resolution
            record["params"] = sm.params_used
            kept = dict(old["benchmarks"]) if old and not old.get("error") else {}
            record["benchmarks"] = kept
            for key in keys:
                train = self.benchmark(key, "train") if settings.calibrate else None
                kept[key[0]] = self.analyses.block(
                    trial / PERCEPTUAL_DIR, step, key, self.benchmark(key), self.reference(key),
                    sm, distances, settings, train,
                )  # fmt: skip
            if frequency:
                record["frequency"] = self.analyses.frequency(cfg, sm, settings.frequency_examples)
            elif old and isinstance(old.get("frequency"), dict):
                record["frequency"] = old["frequency"]
        elif old and not old.get("error"):
            return old  # the new benchmarks could not be scored; keep the complete old result
        record["wall_time_s"] = round(time.time() - t0, 2)
        atomic_write_json(result_path(trial, step), record)
        return record

    # -- passes -------------------------------------------------------------------------------

    def pending(self, trial: Path) -> list[int]:
        from evaluator.features import read_trial_config

        cfg = read_trial_config(trial)
        names = [name for name, _ in self.trial_benchmarks(cfg)]
        settings = Settings.from_config(cfg.get("perceptual"))
        steps = checkpoint.list_steps(checkpoint.checkpoint_dir(trial))
        out = []
        for s in steps:
            if (trial, s) in self._tried:
                continue
            rec = read_result(trial, s)
            if missing_benchmarks(rec, names, self.opts.retry_errors, settings) or (
                needs_frequency(rec, settings)
            ):
                out.append(s)
        return out

    def one_pass(self) -> int:
        """Score everything pending now; returns how many steps were written."""
        n = 0
        for trial in find_trials(self.opts.runs):
            for step in self.pending(trial):
                rec = self.score_step(trial, step)
                if rec is None:
                    self.opts.log(f"{trial.name} step {step}: deleted before scoring, skipped")
                    continue
                n += 1
                self.opts.log(_summary(trial.name, step, rec))
        return n

    def _ended(self, trial: Path, state: str | None) -> bool:
        """Whether --watch has nothing more to wait for from ``trial`` (see the module doc)."""
        if state in TERMINAL:
            return True
        stale = self.opts.stale_after
        if state != "running" or stale <= 0:
            return False
        idle = time.time() - last_activity(trial)
        if idle <= stale:
            return False
        if trial not in self._stale:
            self._stale.add(trial)
            self.opts.log(
                f"{trial.name}: says running but nothing changed for {idle / 60:.0f} min "
                f"(--stale-after={stale:g} s): taken as ended, not waited for"
            )
        return True

    def run(self) -> int:
        runs = self.opts.runs
        if not runs.is_dir():
            raise JobError(f"--runs={runs} is not a directory; expected runs/<sweep>")
        # Every trial's benchmarks load (and are checked) before any scoring starts.
        from evaluator.features import read_trial_config

        trials = find_trials(runs)
        for trial in trials:
            checkpoint.drop_snapshots(checkpoint.checkpoint_dir(trial))
            cfg = read_trial_config(trial)
            calibrate = Settings.from_config(cfg.get("perceptual")).calibrate
            for key in self.trial_benchmarks(cfg):
                self.benchmark(key)
                if calibrate:  # a missing train split stops the job here, not mid-sweep
                    self.benchmark(key, "train")
        total = 0
        while True:
            states = {t: _trial_state(t) for t in find_trials(runs)}
            total += self.one_pass()
            if not self.opts.watch:
                break
            finished = all(self._ended(t, s) for t, s in states.items()) and states
            if finished and not any(self.pending(t) for t in states):
                break
            time.sleep(self.opts.poll_seconds)
        self.opts.log(f"evaluator: {total} step(s) scored under {runs}")
        return total


def _summary(trial: str, step: int, rec: dict[str, Any]) -> str:
    if rec.get("error"):
        return f"{trial} step {step}: ERROR {rec['error']}"
    parts = []
    for name, b in rec["benchmarks"].items():
        d = b["distances"]
        first = next(iter(d))
        others = ", ".join(f"{k} {v['ps']:.2f}" for k, v in d.items() if k != first)
        parts.append(f"{name} PS {first} {d[first]['ps']:.2f}" + (f" ({others})" if others else ""))
    return f"{trial} step {step}: " + "; ".join(parts) + f" [{rec['wall_time_s']:.1f} s]"


def run_job(
    runs: str | os.PathLike,
    watch: bool = False,
    benchmarks: Sequence[str] | None = None,
    bapps_dir: str | None = None,
    poll_seconds: float = 30.0,
    retry_errors: bool = False,
    stale_after: float = 3600.0,
) -> int:
    opts = JobOptions(
        runs=Path(runs),
        watch=watch,
        benchmarks=tuple(benchmarks) if benchmarks else None,
        bapps_dir=bapps_dir,
        poll_seconds=poll_seconds,
        retry_errors=retry_errors,
        stale_after=stale_after,
    )
    return Evaluator(opts).run()


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use: python -m evaluator --runs=runs/<sweep> [--watch]")
