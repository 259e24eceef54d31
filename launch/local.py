"""Run a sweep's trials as processes on this machine, then its evaluator and report.

* Runs every trial that is not done (``launch.trials.todo``), ``options.jobs`` at a time, each
  ``python -m trainer ...`` in its own process group, its stdout/stderr appended to
  ``<workdir>/train.log``; the console gets a short ``[trial]`` line when a trial starts, every
  so often while it runs (step, top-1 from its status.json) and when it ends.
* With GPUs (``CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``) and ``jobs > 1`` each trial gets one
  GPU and at most one trial runs per GPU (with one job, a trial sees every GPU). On CPUs with several jobs, each trial is pinned to its share of the
  cores and its XLA/OpenMP thread counts are set to match (unless already set).
* ``--trials-per-device K`` (``options.trials_per_device``, launch/packing.py): K trials share
  each of those GPUs (each with 0.9/K of its memory) or each CPU slot (its cores), so up to
  ``jobs x K`` trials run at once; one job with K > 1 on GPUs puts K trials on one GPU.
* Each trial's first step is printed with its end line (``first step at 12.3 s``: seconds from
  the trainer's start, compiling included; later trials of a sweep load the compiled programs
  from the sweep's shared cache, trainer/compile_cache.py).
* A failing trial never stops the others: its status.json says ``failed`` with the exit code and
  the last line of its log (also when the trainer died before it could write one).
* Ctrl-C (or SIGTERM): the running trials get SIGTERM (the trainer saves and marks itself
  ``preempted``), after ``STOP_GRACE_S`` SIGKILL; then the table, exit 130. Rerunning resumes.
* Unless ``--no-eval``: ``python -m evaluator`` on the sweep directory, started with
  ``--watch`` before the first trainer on a machine without GPUs (it scores checkpoints while
  later trials train), after training with GPUs; at the end the status table, the evaluator's
  result and ``python -m evaluator.report`` (``launch.results``). The exit code is 1 if any
  trial failed (or the evaluator or report did), else 0.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from launch import packing, results
from launch.procs import last_line, stop_all
from launch.table import status_table
from launch.trials import LaunchOptions, Trial, todo

POLL_S = 0.5
PROGRESS_EVERY_S = 20.0
STOP_GRACE_S = 60.0
EXIT_INTERRUPTED = 130
EXIT_BUSY = 2
INTERRUPTED = "launch: interrupted; rerun the same command to carry on"


def detect_gpus() -> list[str]:
    """GPU ids to hand out: ``CUDA_VISIBLE_DEVICES`` if set, else one per ``nvidia-smi -L`` line."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "-L"], capture_output=True, text=True, timeout=20, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


def cpu_cores() -> list[int]:
    try:
        return sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return list(range(os.cpu_count() or 1))


def cpu_env(threads: int) -> dict[str, str]:
    """Thread counts for a trial that gets ``threads`` cores (set only what is not set already)."""
    env = {
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "OPENBLAS_NUM_THREADS": str(threads),
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
    }
    env = {k: v for k, v in env.items() if k not in os.environ}
    if threads == 1:
        flags = os.environ.get("XLA_FLAGS", "")
        if "xla_cpu_multi_thread_eigen" not in flags:
            env["XLA_FLAGS"] = (
                flags + " --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
            ).strip()
    return env


@dataclass
class Slot:
    """Where one running trial goes: a GPU id, or a set of CPU cores."""

    gpu: str | None = None
    cores: list[int] = field(default_factory=list)
    share: int = 1  # trials on this slot's device at once (--trials-per-device)

    def env(self) -> dict[str, str]:
        if self.gpu is not None:
            return {"CUDA_VISIBLE_DEVICES": self.gpu, **packing.memory_env(self.share)}
        return cpu_env(len(self.cores)) if self.cores else {}


def make_slots(jobs: int, per_device: int = 1) -> list[Slot]:
    """One slot per running trial: ``per_device`` on each of ``jobs`` GPUs (or CPU core
    shares), interleaved so trials spread over the devices first."""
    gpus = detect_gpus()
    k = max(1, per_device)
    if gpus and (jobs > 1 or k > 1):
        devices = gpus[: max(1, min(jobs, len(gpus)))]
        if jobs > len(gpus):
            print(
                f"launch: {len(gpus)} GPU(s) found; running {len(gpus) * k} trials at once, "
                f"{k} per GPU"
            )
        return [Slot(gpu=g, share=k) for _ in range(k) for g in devices]
    if jobs <= 1:
        return [Slot(share=k) for _ in range(k)]
    cores = cpu_cores()
    per = max(1, len(cores) // jobs)
    shares = [[cores[(i * per + j) % len(cores)] for j in range(per)] for i in range(jobs)]
    return [Slot(cores=c, share=k) for _ in range(k) for c in shares]


@dataclass
class Running:
    trial: Trial
    proc: subprocess.Popen
    slot: Slot
    log: IO[bytes]
    started: float
    last_step: Any = None
    last_print: float = 0.0


def _say(name: str, text: str) -> None:
    print(f"[{name}] {text}", flush=True)


class LocalRunner:
    def __init__(self, trials: Sequence[Trial], options: LaunchOptions):
        self.trials = list(trials)
        self.options = options
        self.running: list[Running] = []
        self.failed: list[str] = []
        self.stopping = False
        self.evaluator: subprocess.Popen | None = None  # the --watch evaluator beside the trainers
        self.evaluator_dir: Path | None = None  # its sweep directory (evaluator.log)
        self.evaluator_said = False  # its early end was reported

    # -- one trial

    def start(self, trial: Trial, slot: Slot) -> Running:
        cmd = trial.command(self.options.python)
        trial.workdir.mkdir(parents=True, exist_ok=True)
        log = open(trial.log_path, "ab")
        log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {trial.command_text()}\n".encode())
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **slot.env()}
        cores = slot.cores
        proc = subprocess.Popen(
            cmd,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,  # Ctrl-C reaches only the launcher; it stops the children
            preexec_fn=(lambda: os.sched_setaffinity(0, cores)) if cores else None,
        )
        where = f"GPU {slot.gpu}" if slot.gpu is not None else (f"cores {cores}" if cores else "")
        if slot.share > 1:
            where = f"{where or 'the CPU'}, shared by {slot.share} trials"
        _say(
            trial.name,
            f"started, pid {proc.pid}{', ' + where if where else ''}; log {trial.log_path}",
        )
        return Running(trial, proc, slot, log, time.time(), last_print=time.time())

    def progress(self, r: Running) -> None:
        now = time.time()
        if now - r.last_print < PROGRESS_EVERY_S:
            return
        st = r.trial.status()
        step = st.get("step")
        if step is None or step == r.last_step:
            return
        r.last_step, r.last_print = step, now
        last = st.get("last_eval") or {}
        top1 = last.get("top1")
        acc = (
            f", top-1 {100 * top1:.2f}% at step {last.get('step', '?')}"
            if isinstance(top1, (int, float))
            else ""
        )
        _say(r.trial.name, f"step {step}/{st.get('total_steps', '?')}{acc}")

    def finish(self, r: Running, rc: int) -> None:
        r.log.close()
        t = r.trial
        st = t.status()
        state = st.get("state")
        took = time.time() - r.started
        if rc == 0 and state in ("done", "preempted", "diverged"):
            top1 = (st.get("last_eval") or {}).get("top1")
            acc = f", top-1 {100 * top1:.2f}%" if isinstance(top1, (int, float)) else ""
            first, cpu = st.get("first_step_s"), st.get("first_step_cpu_s")
            if isinstance(first, (int, float)):
                acc += f", first step at {first:.1f} s"
                acc += f" ({cpu:.1f} CPU s)" if isinstance(cpu, (int, float)) else ""
            _say(t.name, f"{state} in {took:.0f}s{acc}")
            return
        if self.stopping and rc in (-signal.SIGTERM, -signal.SIGKILL, 128 + signal.SIGTERM):
            if state == "running":
                t.write_status(state="preempted", pid=None, error="stopped by the launcher")
            _say(t.name, f"stopped ({t.status().get('state')}); log {t.log_path}")
            return
        if state not in ("failed", "diverged"):
            # The trainer died before recording why (import error, bad argv, killed): record it.
            why = last_line(t.log_path) or "no output"
            t.write_status(state="failed", pid=None, error=f"trainer exited with code {rc}: {why}")
            st = t.status()
        if st.get("state") == "diverged":
            _say(t.name, f"diverged (loss not finite) after {took:.0f}s; log {t.log_path}")
            return
        self.failed.append(t.name)
        _say(t.name, f"FAILED (exit {rc}) after {took:.0f}s: {st.get('error')}; log {t.log_path}")

    # -- the sweep

    def run(self) -> int:
        sweep_dir = self.trials[0].workdir.parent
        with SweepLock(sweep_dir) as lock:
            if not lock.held:
                print(
                    f"launch: error: another launcher is running {sweep_dir} (pid {lock.owner}); "
                    "wait for it or stop it first",
                    file=sys.stderr,
                )
                return EXIT_BUSY
            return self._run(sweep_dir)

    def _run(self, sweep_dir: Path) -> int:
        old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            return self._train_and_evaluate(sweep_dir)
        finally:
            signal.signal(signal.SIGTERM, old_term)

    def _train_and_evaluate(self, sweep_dir: Path) -> int:
        queue = todo(self.trials)
        done = len(self.trials) - len(queue)
        print(f"launch: {len(self.trials)} trials, {done} done, {len(queue)} to run", flush=True)
        started = time.time()
        if queue:
            many = len(queue) > 1
            k = self.options.trials_per_device if many else 1
            if k > 1:
                print(f"launch: {k} trials per device (--trials-per-device)", flush=True)
            slots = make_slots(self.options.jobs if many else 1, k)
            try:
                self.watch_beside(queue, sweep_dir)
                self.loop(queue, slots)
            except KeyboardInterrupt:
                self.stop()
                print("\n" + status_table(self.trials), flush=True)
                print(INTERRUPTED, flush=True)
                return EXIT_INTERRUPTED
        print(status_table(self.trials), flush=True)
        rc = (
            1 if self.failed or any(t.status().get("state") == "failed" for t in self.trials) else 0
        )
        if not self.options.no_eval:
            try:
                if results.evaluate_and_report(
                    sweep_dir, self.options.python, self.evaluator, started
                ) != 0:  # fmt: skip
                    rc = 1
            except KeyboardInterrupt:  # the evaluator was stopped (launch.results.finish)
                print(f"\n{INTERRUPTED}", flush=True)
                return EXIT_INTERRUPTED
        return rc

    def watch_beside(self, queue: list[Trial], sweep_dir: Path) -> None:
        """Without GPUs, start the evaluator (``--watch``) before the first trainer, so it scores
        checkpoints while later ones train (``launch.results``). The queued trials say
        ``pending`` first: one that failed before would otherwise look ended to it until its
        trainer starts again, and it could stop early."""
        if self.options.no_eval or detect_gpus() or not results.available(results.EVALUATOR):
            return  # not installed: said once, after training (results.evaluate)
        for t in queue:
            if t.status().get("state") != "pending":
                t.write_status(state="pending")
        self.evaluator = results.start_watching(sweep_dir, self.options.python)
        self.evaluator_dir = sweep_dir

    def check_evaluator(self) -> None:
        """Say at once when the evaluator beside the trainers ended with an error (a bad
        --bapps-dir, a crash), not only when training is over; training goes on."""
        p = self.evaluator
        if p is None or self.evaluator_said or p.poll() in (None, 0):
            return
        self.evaluator_said = True
        print(results.ended_early(p.returncode, self.evaluator_dir), flush=True)

    def loop(self, queue: list[Trial], slots: list[Slot]) -> None:
        free = list(slots)
        while queue or self.running:
            while queue and free:
                self.running.append(self.start(queue.pop(0), free.pop(0)))
            time.sleep(POLL_S)
            for r in list(self.running):
                rc = r.proc.poll()
                if rc is None:
                    self.progress(r)
                    continue
                self.running.remove(r)
                free.append(r.slot)
                self.finish(r, rc)
            self.check_evaluator()

    def stop(self) -> None:
        """SIGTERM every running trial's process group, wait, then SIGKILL what is left."""
        self.stopping = True
        signal.signal(signal.SIGINT, _raise_interrupt)
        print(f"\nlaunch: stopping {len(self.running)} running trial(s) (SIGTERM)", flush=True)
        stop_all([r.proc for r in self.running] + ([self.evaluator] if self.evaluator else []),
                 STOP_GRACE_S)  # fmt: skip
        for r in self.running:
            self.finish(r, r.proc.wait())
        self.running = []


class SweepLock:
    """An exclusive ``flock`` on ``<sweep_dir>/.launch.lock`` for the launcher's lifetime, so two
    launchers on one machine never start the same pending trial twice (the kernel drops the lock
    when the process dies, so a crash leaves nothing stale)."""

    def __init__(self, sweep_dir: Path):
        self.path = Path(sweep_dir) / ".launch.lock"
        self.held = False
        self.owner = "?"
        self._f: IO[str] | None = None

    def __enter__(self) -> SweepLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a+")
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._f.seek(0)
            self.owner = self._f.read().strip() or "?"
            return self
        self.held = True
        self._f.seek(0)
        self._f.truncate()
        self._f.write(str(os.getpid()))
        self._f.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._f is not None:
            if self.held:
                fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def launch(trials: Sequence[Trial], options: LaunchOptions) -> int:
    """Run the trials that are not done, then evaluate and report; the exit code."""
    if options.launcher_opts:
        print(
            f"launch: the local launcher takes no --launcher-opt; ignoring {sorted(options.launcher_opts)}",
            file=sys.stderr,
        )
    return LocalRunner(trials, options).run()
