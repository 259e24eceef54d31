"""The evaluator job: score every checkpoint of a sweep, as its own process beside training.

For each trial directory under ``runs/<sweep>`` (one holding ``config.json``) and each finalised
checkpoint step (``trainer.checkpoint.list_steps``) without ``perceptual/<step>.json``:

1. snapshot the step directory into ``checkpoints/_SNAPSHOTS/<step>`` (orbax's snapshot location)
   with hard links, so the trainer deleting the step meanwhile cannot pull files from under the
   restore; a step deleted before the snapshot is skipped;
2. restore it read-only from the snapshot, score it on the benchmarks, release the snapshot;
3. write ``perceptual/<step>.json`` atomically (docs/file-contracts.md); a checkpoint that fails
   its integrity check (trainer/integrity.py) or cannot be read gets a one-line ``"error"``
   record instead, never a score (``--retry-errors`` tries such steps again; so does any job
   once the step holds another save, as after the trainer moved a damaged one aside: each
   record keeps its save's ``checkpoint_id``). The job's last line counts steps scored, error
   records and steps skipped; ``python -m evaluator`` exits 3 on error records.

A step whose result lacks one of the benchmarks asked for now (say BAPPS added after a sweep
scored on the proxy), or holds the proxy from an older version, is scored on those only, and
they are merged into its result.
The result file is the only state: a job killed at any point and restarted redoes exactly the
steps without a complete one. ``--watch`` polls until every trial's status.json says done / failed /
diverged and nothing is left to score. A trial that says ``running`` but whose files (status.json,
metrics.jsonl, checkpoints) have not changed for ``--stale-after`` seconds (default an hour) is
taken as ended too: its process was killed without a word (``kill -9``, a node lost, a job
cancelled), and the watcher would otherwise hold its machine until a time limit. Pending and
preempted trials are waited for: a queue may start or requeue them hours later."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evaluator import benchmarks as bm
from evaluator import records
from evaluator.analyses import Analyses, needs_frequency
from evaluator.bapps import IMAGE_SIZE, Benchmark, BenchmarkError
from evaluator.distances import FEATURE_DISTANCES, PIXEL_METRICS
from evaluator.imagesets import FULLY_CONVOLUTIONAL, model_for, scored_size
from evaluator.probes import Settings
from evaluator.proxy import default_dir as proxy_default_dir
from trainer import checkpoint, files, integrity
from trainer.files import Busy, FileLock, atomic_write_json

TERMINAL = ("done", "failed", "diverged")


class JobError(ValueError):
    """Bad job arguments (one line)."""


@dataclass
class Counts:
    """What one job did: steps scored, error records among the trials' steps when it ended
    (``error_steps``: ``"<trial> step <n>"``) and steps deleted before they were scored."""

    scored: int = 0
    skipped: int = 0
    error_steps: list[str] = field(default_factory=list)

    def line(self, runs: Path) -> str:
        errors = len(self.error_steps)
        done = f"{self.scored} step(s) scored, {errors} error(s), {self.skipped} skipped"
        return f"evaluator: {done} under {runs}"


@dataclass
class JobOptions:
    runs: Path
    watch: bool = False
    benchmarks: tuple[str, ...] | None = None  # None: each trial's perceptual.benchmarks
    bapps_dir: str | None = None  # None: each trial's perceptual.bapps_dir
    dirs: dict[str, str] = field(default_factory=dict)  # nights/tid2013/kadid10k: --<name>-dir
    poll_seconds: float = 30.0
    retry_errors: bool = False  # score steps whose result is an error record again
    stale_after: float = 3600.0  # --watch: a running trial unchanged this long ended; 0: never
    log: Callable[[str], None] = field(default=lambda s: print(s, flush=True))


# ----------------------------------------------------------------------------- the job


class Evaluator:
    """Holds loaded benchmarks and their pixel reference scores across trials and steps."""

    def __init__(self, opts: JobOptions):
        self.opts = opts
        self._benches: dict[tuple[str, ...], Benchmark] = {}
        self._refs: dict[tuple[str, str, int | None], Future] = {}
        self.analyses = Analyses(opts.log)  # probes, dynamic range, frequency, calibration
        # Steps this job tried whose result stayed incomplete (an error record again, or new
        # benchmarks that could not be scored): not tried again until the job restarts, so a
        # --watch job still ends.
        self._tried: set[tuple[Path, int]] = set()
        self._stale: set[Path] = set()  # running trials already reported as stale
        self._done = 0  # steps this job has taken up (the k of its "[k/N]" lines)
        self._events: dict[Path, Any] = {}  # trial -> its TensorBoard writer (trainer.events)

    # -- benchmarks ---------------------------------------------------------------------------

    def trial_benchmarks(self, cfg: dict[str, Any]) -> list[tuple[str, str, int | None]]:
        """``[(name, directory, size)]`` a trial is scored on; ``size`` is the resolution of
        NIGHTS, TID2013 and KADID-10k (``evaluator.imagesets``; None: native), BAPPS's 64 for
        the others."""
        perc = cfg.get("perceptual") or {}
        names = self.opts.benchmarks or tuple(
            b for b in str(perc.get("benchmarks") or "proxy").split(",") if b
        )
        full_size = scored_size(perc, int(cfg["data"]["image_size"]))
        out = []
        for name in names:
            if name == "proxy":
                out.append((name, str(proxy_default_dir(cfg)), IMAGE_SIZE))
            elif name in bm.DIR_BENCHMARKS:
                given = self.opts.bapps_dir if name == "bapps" else self.opts.dirs.get(name)
                d = given if given is not None else perc.get(f"{name}_dir")
                if not d:
                    where = (
                        "python -m evaluator.bapps prints" if name == "bapps" else "README.md gives"
                    )
                    raise BenchmarkError(
                        f"benchmark {name} needs a directory: pass --{name}-dir=DIR or set "
                        f"perceptual.{name}_dir ({where} the download commands)"
                    )
                if name not in bm.FULL_SIZE:
                    out.append((name, str(d), IMAGE_SIZE))
                    continue
                model = str(cfg["model"].get("name"))
                if full_size is None and model not in FULLY_CONVOLUTIONAL:
                    raise JobError(
                        f"perceptual.resolution=native needs a fully convolutional model "
                        f"({', '.join(FULLY_CONVOLUTIONAL)}); this trial's is {model}"
                    )
                out.append((name, str(d), full_size))
            else:
                raise JobError(
                    f"benchmark {name!r} is unknown; allowed: {', '.join(bm.BENCHMARK_NAMES)}"
                )
        return out

    def benchmark(self, key: tuple[str, str, int | None], split: str = "val") -> Benchmark:
        """The benchmark ``key`` = (name, directory, size), its ``val`` split (scored) or its
        ``train`` split (the ``lin`` calibration), loaded once per job."""
        full = (*key, split) if split != "val" else key
        if full not in self._benches:
            t0 = time.time()
            self._benches[full] = bm.load_benchmark(*key, split=split)
            b = self._benches[full]
            n = sum(len(t) for t in b.twoafc.values()) + sum(len(j) for j in b.jnd.values())
            n += len(b.mos) if b.mos is not None else 0
            what = key[0] if split == "val" else f"{key[0]} {split}"
            self.opts.log(f"loaded {what} from {key[1]}: {n} examples ({time.time() - t0:.1f} s)")
        return self._benches[full]

    def reference(self, key: tuple[str, str, int | None]) -> dict[str, Any]:
        """The pixel metrics' score blocks on benchmark ``key``, computed once per job."""
        if key not in self._refs:
            self.start_reference(key)
        return self._refs[key].result()

    def start_reference(self, key: tuple[str, str, int | None]) -> None:
        """Compute ``reference(key)`` in a thread of its own: numpy and scikit-image work beside
        the first checkpoint's restore and compile, which leave a core idle. A daemon thread, so
        an interrupted job does not wait for it."""
        if key in self._refs:
            return
        bench, done = self.benchmark(key), Future()

        def work() -> None:
            try:
                done.set_result(bm.score_pixels(bench, PIXEL_METRICS))
            except BaseException as e:  # handed to whoever asks for the result
                done.set_exception(e)

        self._refs[key] = done
        threading.Thread(target=work, name=f"reference-{key[0]}", daemon=True).start()

    # -- one step -----------------------------------------------------------------------------

    def score_step(self, trial: Path, step: int) -> dict[str, Any] | None:
        """Score ``step`` on the benchmarks its result lacks and write ``perceptual/<step>.json``
        (merged with what it already held); None when the step vanished first."""
        from evaluator.features import ScoringModel, read_trial_config

        t0 = time.time()
        cfg = read_trial_config(trial)
        perc = cfg.get("perceptual") or {}
        keys = self.trial_benchmarks(cfg)
        old = records.read_result(trial, step)
        # ``pending`` decides whether an error record is tried again; once here, it is.
        settings = Settings.from_config(perc)
        todo = records.missing_benchmarks(old, [key[0] for key in keys], True, settings)
        frequency = needs_frequency(None if old and old.get("error") else old, settings)
        self._tried.add((trial, step))
        keys = [k for k in keys if k[0] in todo]
        distances = tuple(
            d for d in str(perc.get("distances") or ",".join(FEATURE_DISTANCES)).split(",") if d
        )
        ckpt_dir = checkpoint.checkpoint_dir(trial)
        record: dict[str, Any] = {
            "step": step,
            "epoch": records.epoch_of(trial, step),
            "trial": trial.name,
            "model": cfg["model"],
            "checkpoint_id": integrity.fingerprint(ckpt_dir / str(step)),
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
            record["error"] = records.error_line(e)
        finally:
            if snap is not None:
                checkpoint.release_snapshot(ckpt_dir, step)
        if record["error"] is None:
            record["integrity"] = sm.integrity
            record["resolution"] = sm.resolution
            record["params"] = sm.params_used
            kept = dict(old["benchmarks"]) if old and not old.get("error") else {}
            record["benchmarks"] = kept
            for key in keys:
                calibrated = settings.calibrate and bm.has_train_split(key[0])
                train = self.benchmark(key, "train") if calibrated else None
                model = model_for(sm, cfg, key[2]) if key[0] in bm.FULL_SIZE else sm
                kept[key[0]] = self.analyses.block(
                    trial / records.PERCEPTUAL_DIR, step, key, self.benchmark(key), self.reference(key),
                    model, distances, settings, train,
                )  # fmt: skip
                if "resolution" in kept[key[0]]:
                    kept[key[0]]["resolution"]["model"] = model.resolution["how"]
            if frequency:
                record["frequency"] = self.analyses.frequency(cfg, sm, settings.frequency_examples)
            elif old and isinstance(old.get("frequency"), dict):
                record["frequency"] = old["frequency"]
        elif old and not old.get("error"):
            return old  # the new benchmarks could not be scored; keep the complete old result
        record["wall_time_s"] = round(time.time() - t0, 2)
        atomic_write_json(records.result_path(trial, step), record)
        return record

    # -- passes -------------------------------------------------------------------------------

    def pending(self, trial: Path) -> list[int]:
        from evaluator.features import read_trial_config

        cfg = read_trial_config(trial)
        names = [key[0] for key in self.trial_benchmarks(cfg)]
        settings = Settings.from_config(cfg.get("perceptual"))
        steps = checkpoint.list_steps(checkpoint.checkpoint_dir(trial))
        out = []
        for s in steps:
            if (trial, s) in self._tried:
                continue
            rec = records.read_result(trial, s)
            retry = self.opts.retry_errors or records.made_for_another_save(rec, trial, s)
            if records.missing_benchmarks(rec, names, retry, settings) or needs_frequency(
                rec, settings
            ):
                out.append(s)
        return out

    def error_steps(self) -> list[str]:
        """``"<trial> step <n>"`` for every checkpoint step whose result is an error record."""
        return [
            f"{trial.name} step {s}"
            for trial in records.find_trials(self.opts.runs)
            for s in checkpoint.list_steps(checkpoint.checkpoint_dir(trial))
            if (rec := records.read_result(trial, s)) is not None and rec.get("error")
        ]

    def one_pass(self, counts: Counts) -> None:
        """Score everything pending now, counting into ``counts``; each line starts ``[k/N]``
        (this job's k-th step of the N it has met so far)."""
        work = [(t, s) for t in records.find_trials(self.opts.runs) for s in self.pending(t)]
        total = self._done + len(work)
        for trial, step in work:
            self._done += 1
            k = f"[{self._done}/{total}]"
            rec = self.score_step(trial, step)
            if rec is None:
                counts.skipped += 1
                self.opts.log(f"{k} {trial.name} step {step}: deleted before scoring, skipped")
                continue
            counts.scored += 0 if rec.get("error") else 1
            self.opts.log(f"{k} {records.summary(trial.name, step, rec)}")
            self._tensorboard(trial, step, rec)

    def _tensorboard(self, trial: Path, step: int, rec: dict[str, Any]) -> None:
        """The step's scores and probes into the trial's TensorBoard folder, beside the
        trainer's ``train/*`` and ``eval/*`` (a file of the evaluator's own per job)."""
        from trainer import events, status

        if trial not in self._events:
            on = status.tensorboard_available()
            self._events[trial] = events.writers(trial, on, wandb=False) if on else None
        if self._events[trial] is not None:
            self._events[trial].scalars(step, records.scalars(rec))

    def close(self) -> None:
        for w in self._events.values():
            if w is not None:
                w.close()
        self._events = {}

    def _ended(self, trial: Path, state: str | None) -> bool:
        """Whether --watch has nothing more to wait for from ``trial`` (see the module doc)."""
        if state in TERMINAL:
            return True
        stale = self.opts.stale_after
        if state != "running" or stale <= 0:
            return False
        idle = time.time() - records.last_activity(trial)
        if idle <= stale:
            return False
        if trial not in self._stale:
            self._stale.add(trial)
            self.opts.log(
                f"{trial.name}: says running but nothing changed for {idle / 60:.0f} min "
                f"(--stale-after={stale:g} s): taken as ended, not waited for"
            )
        return True

    def run(self) -> Counts:
        runs = self.opts.runs
        if not runs.is_dir():
            raise JobError(f"--runs={runs} is not a directory; expected runs/<sweep>")
        # Every trial's benchmarks load (and are checked) before any scoring starts.
        from evaluator.features import read_trial_config

        trials = records.find_trials(runs)
        for trial in trials:
            checkpoint.drop_snapshots(checkpoint.checkpoint_dir(trial))
            cfg = read_trial_config(trial)
            calibrate = Settings.from_config(cfg.get("perceptual")).calibrate
            for key in self.trial_benchmarks(cfg):
                self.start_reference(key)  # loads the benchmark; its pixel references in a thread
                if calibrate and bm.has_train_split(key[0]):  # missing: stops the job here
                    self.benchmark(key, "train")
        counts = Counts()
        while True:
            states = {t: records.trial_state(t) for t in records.find_trials(runs)}
            self.one_pass(counts)
            if not self.opts.watch:
                break
            finished = all(self._ended(t, s) for t, s in states.items()) and states
            if finished and not any(self.pending(t) for t in states):
                break
            time.sleep(self.opts.poll_seconds)
        counts.error_steps = self.error_steps()
        if counts.error_steps:
            self.opts.log(
                f"evaluator: not scored, error records: {', '.join(counts.error_steps)} "
                "(--retry-errors tries them again)"
            )
        self.opts.log(counts.line(runs))
        return counts


def run_job(runs: str | os.PathLike, **options: Any) -> Counts:
    """Run the job on the sweep directory ``runs``; ``options`` are ``JobOptions`` fields. One
    job per sweep: a second is refused (``.evaluator.lock``), as it would drop the first one's
    snapshots from under its restores."""
    problem = files.remote_problem(runs)  # a bad gs:// path: one line, before any work
    if problem:
        raise JobError(problem)
    runs = files.path(runs)
    if not runs.is_dir():
        raise JobError(f"--runs={runs} is not a directory; expected runs/<sweep>")
    try:
        lock = FileLock(runs / ".evaluator.lock").acquire()
    except Busy as e:
        raise JobError(
            f"another evaluator (pid {e.owner}) is scoring {runs}; wait for it"
        ) from None
    if options.get("benchmarks"):
        options["benchmarks"] = tuple(options["benchmarks"])
    job = Evaluator(JobOptions(runs=runs, **options))
    try:
        return job.run()
    finally:
        job.close()
        lock.release()
