"""The TPU launcher's loop: N slices, one queue of trials, each slot fed the next trial.

A slot is a whole slice (the trial runs on every worker and ``jax.distributed`` joins them) or,
with ``--tpu-per-host``, one worker of a slice (a trial that fits one host). Trials run detached
on the workers (launch/tpu_worker.py), so this loop only polls; every ``poll`` seconds it:

1. syncs the trials' records from the bucket (sync.sh) and lists the slices' states (state.sh,
   one gcloud call for all of them);
2. a slice that was ready and is now PREEMPTED, TERMINATED, STOPPED, SUSPENDED (a queued
   resource) or gone is lost: its trials go back to the head of the queue (each resumes from its
   last checkpoint in the bucket, on whichever slot frees first) and the slice is created anew
   (up.sh: create.sh deletes what is left of it first, then setup.sh);
3. brings slices up: every slice that is down runs up.sh in the background, so N slices come up
   at once; one that fails is tried again after a wait, and given up after ``MAX_UP_FAILURES``
   failures in a row;
4. a started trial has ended when its status.json carries this start's attempt id and says done,
   diverged, failed or preempted (preempted ones go back to the queue); a trial whose status has
   not changed for ``stale`` seconds is sent its start again, which attaches to a live trainer
   and starts (resumes) a dead one;
5. every free slot of a ready slice takes the next trial: run.sh sends ``launch.tpu_worker
   start``, which returns as soon as the trainer runs detached (the starts of one round are
   sent side by side).

Trials that are pending or running on one of these slices (their status's ``tpu`` block names
it) when the launcher starts are attached to, once that slice is ready: the same start with the
same attempt id, which ``tpu_worker`` answers by attaching. Nothing here keeps state of its own:
the slices' states and the trials' status.json are read anew each round.
"""

from __future__ import annotations

import collections
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from launch.procs import last_line
from launch.trials import Trial

LOST = ("PREEMPTED", "TERMINATED", "STOPPED", "STOPPING", "SUSPENDED", "SUSPENDING", "FAILED", "")
ENDED = ("done", "diverged", "failed", "preempted")
MAX_UP_FAILURES = 3  # a slice that fails to come up this many times in a row is given up
UP_RETRY_S = 120.0  # wait before the next try, times the failures so far
MAX_RESTARTS = 10  # starts of one trial in one launcher run (preempted, lost slices)
START_FAILURES = 3  # failed starts in a row before a slice is set up again
START_TIMEOUT_S = 600.0  # a start (one ssh that returns once the trainer is detached)
PARALLEL_STARTS = 16  # starts sent at once (each an ssh of a few seconds)


class Cloud(Protocol):
    """What the loop needs from gcloud (launch.tpu.Gcloud; the tests' fake gcloud behind it)."""

    def run(
        self, cmd: list[str], name: str, timeout: float | None = None, quiet: bool = False
    ) -> int: ...
    def spawn(self, cmd: list[str], name: str, log: Path) -> subprocess.Popen: ...
    def states(self) -> dict[str, str] | None: ...
    def sync(self) -> None: ...


@dataclass
class Job:
    trial: Trial
    slot: str  # "all" or a worker index
    attempt: str
    seen: float  # when its status last changed
    mark: tuple = ()


@dataclass
class Slice:
    name: str
    state: str = "down"  # down | coming (up.sh runs) | ready | gone (given up)
    proc: subprocess.Popen | None = None
    failures: int = 0
    start_failures: int = 0
    retry_at: float = 0.0
    jobs: dict[str, Job] = field(default_factory=dict)  # slot -> job
    adopt: list[Job] = field(default_factory=list)  # running here before: attach when ready


def new_attempt() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


class Scheduler:
    def __init__(
        self,
        cloud: Cloud,
        slices: Sequence[str],
        slots: Sequence[str],
        start_cmd: Callable[[Trial, str, str, str], list[str]],
        up_cmd: list[str],
        log_dir: Path,
        poll: float = 60.0,
        stale: float = 3600.0,
        say: Callable[[str], None] = lambda s: print(f"[tpu] {s}", flush=True),
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.cloud, self.slots, self.start_cmd, self.up_cmd = cloud, list(slots), start_cmd, up_cmd
        self.slices = [Slice(n) for n in slices]
        self.log_dir, self.poll, self.stale = log_dir, poll, stale
        self.say, self.clock, self.sleep = say, clock, sleep
        self.queue: collections.deque[Trial] = collections.deque()
        self.starts: collections.Counter[str] = collections.Counter()
        self.max_busy = 0  # the most slots busy at once (reported at the end)

    # -- the loop

    def run(self, trials: Sequence[Trial]) -> None:
        """Run ``trials`` (those left to run) until each has ended or no slice can run them."""
        self.begin(trials)
        self.wait()

    def begin(self, trials: Sequence[Trial]) -> None:
        """Queue ``trials``, note those to attach to, and start bringing the slices up."""
        self.queue = collections.deque(trials)
        self._adopt()
        self.round()

    def wait(self) -> None:
        while self.queue or self.busy():
            if all(s.state == "gone" for s in self.slices):
                self.say(f"every slice was given up; {len(self.queue)} trials not started")
                return
            self.sleep(self.poll)
            self.round()

    def round(self) -> None:
        self.cloud.sync()
        states = self.cloud.states()
        for s in self.slices:
            self._advance(s, states)
        for s in self.slices:
            for job in list(s.jobs.values()):
                self._check(s, job)
        self._fill()
        self.max_busy = max(self.max_busy, sum(len(s.jobs) for s in self.slices))

    def busy(self) -> bool:
        return any(s.jobs or s.adopt for s in self.slices)

    def close(self) -> None:
        """Stop slices still coming up (the loop ended or was interrupted)."""
        for s in self.slices:
            if s.proc is not None and s.proc.poll() is None:
                try:
                    os.killpg(s.proc.pid, signal.SIGTERM)  # up.sh and the gcloud it runs
                except ProcessLookupError:
                    pass
                s.proc.wait()

    # -- slices

    def _advance(self, s: Slice, states: dict[str, str] | None) -> None:
        cloud = None if states is None else states.get(s.name, "")
        if cloud in LOST and (s.state == "ready" or s.jobs or s.adopt):
            self._lost(s, cloud)
        if s.state == "coming" and s.proc is not None and s.proc.poll() is not None:
            rc, s.proc = s.proc.returncode, None
            if rc == 0:
                s.state, s.failures, s.start_failures = "ready", 0, 0
                self.say(f"{s.name} is ready")
                return
            s.failures += 1
            why = last_line(self._up_log(s)) or "no output"
            if s.failures >= MAX_UP_FAILURES:
                s.state = "gone"
                self.say(f"{s.name}: up.sh failed {s.failures} times ({why}); giving it up")
                self._take_back(s)
                return
            s.state, s.retry_at = "down", self.clock() + UP_RETRY_S * s.failures
            self.say(f"{s.name}: up.sh exited {rc} ({why}); trying again later")
        if s.state == "down" and self.clock() >= s.retry_at:
            self._bring_up(s)

    def _bring_up(self, s: Slice) -> None:
        s.proc = self.cloud.spawn(self.up_cmd, s.name, self._up_log(s))
        s.state = "coming"
        self.say(f"{s.name}: creating and setting up (log {self._up_log(s)})")

    def _up_log(self, s: Slice) -> Path:
        return self.log_dir / f"tpu-{s.name}.log"

    def _lost(self, s: Slice, state: str) -> None:
        names = ", ".join(j.trial.name for j in (*s.jobs.values(), *s.adopt)) or "none"
        self.say(f"{s.name} is {state or 'gone'}: its trials ({names}) go back to the queue")
        self._take_back(s)
        if s.state != "coming":  # up.sh (create.sh) deletes what is left and creates it anew
            self._bring_up(s)

    def _take_back(self, s: Slice) -> None:
        """The slice's trials back to the head of the queue."""
        trials = [j.trial for j in (*s.jobs.values(), *s.adopt)]
        s.jobs.clear()
        s.adopt.clear()
        self._requeue(trials)

    # -- trials

    def _adopt(self) -> None:
        """Trials running on one of these slices before this launcher started: attach later."""
        by_name = {s.name: s for s in self.slices}
        for t in list(self.queue):
            st = t.status()
            tpu = st.get("tpu") or {}
            s = by_name.get(tpu.get("slice"))
            slot = str(tpu.get("worker", ""))
            if s is None or st.get("state") not in ("pending", "running") or slot not in self.slots:
                continue
            if any(j.slot == slot for j in s.adopt):
                continue  # two trials claim one slot: the second starts afresh
            self.queue.remove(t)
            s.adopt.append(Job(t, slot, str(tpu.get("attempt")), self.clock()))
            self.say(f"{t.name} was running on {s.name}; attaching to it once the slice is up")

    def _check(self, s: Slice, job: Job) -> None:
        st = job.trial.status()
        state = st.get("state")
        if (st.get("tpu") or {}).get("attempt") == job.attempt and state in ENDED:
            del s.jobs[job.slot]
            error = f": {st.get('error')}" if state in ("failed", "preempted") else ""
            self.say(f"{job.trial.name} {state} on {s.name}{error}")
            if state == "preempted":
                self._requeue([job.trial])
            return
        mark = (state, st.get("step"), st.get("updated"))
        if mark != job.mark:
            job.mark, job.seen = mark, self.clock()
        elif self.stale and self.clock() - job.seen > self.stale:
            self.say(f"{job.trial.name}: no news for {self.stale:.0f}s; asking {s.name} again")
            job.seen = self.clock()
            cmd = self.start_cmd(job.trial, s.name, job.slot, job.attempt)
            self.cloud.run(cmd, s.name, START_TIMEOUT_S, quiet=True)

    def _fill(self) -> None:
        """Every free slot of every ready slice takes a trial (those to attach to first); the
        starts (one ssh each) run side by side, up to ``PARALLEL_STARTS`` at once."""
        plan: list[tuple[Slice, Trial, str, str]] = []
        for s in self.slices:
            if s.state != "ready":
                continue
            taken = set(s.jobs)
            for job in s.adopt:
                plan.append((s, job.trial, job.slot, job.attempt))
                taken.add(job.slot)
            s.adopt.clear()
            for slot in self.slots:
                if slot not in taken and self.queue:
                    plan.append((s, self.queue.popleft(), slot, new_attempt()))
        if not plan:
            return
        for _, trial, _, _ in plan:
            self.starts[trial.name] += 1
        with ThreadPoolExecutor(min(PARALLEL_STARTS, len(plan))) as pool:
            codes = list(pool.map(lambda p: self._send(*p), plan))
        for (s, trial, slot, attempt), rc in zip(plan, codes, strict=True):
            self._started(s, trial, slot, attempt, rc)

    def _send(self, s: Slice, trial: Trial, slot: str, attempt: str) -> int:
        cmd = self.start_cmd(trial, s.name, slot, attempt)
        return self.cloud.run(cmd, s.name, START_TIMEOUT_S, quiet=True)

    def _started(self, s: Slice, trial: Trial, slot: str, attempt: str, rc: int) -> None:
        if rc != 0:
            s.start_failures += 1
            self.say(f"{trial.name}: starting it on {s.name} failed (exit {rc})")
            self._requeue([trial])
            if s.start_failures >= START_FAILURES and s.state == "ready":
                self.say(f"{s.name}: {s.start_failures} failed starts; setting it up again")
                s.state, s.retry_at = "down", self.clock()
            return
        s.start_failures = 0
        s.jobs[slot] = Job(trial, slot, attempt, self.clock())
        where = s.name if slot == "all" else f"{s.name} worker {slot}"
        self.say(f"{trial.name} -> {where} (attempt {attempt})")

    def _requeue(self, trials: Sequence[Trial]) -> None:
        """Back to the head of the queue, in order; a trial started too often is left alone."""
        for t in reversed(trials):
            if self.starts[t.name] >= MAX_RESTARTS:
                self.say(f"{t.name}: started {self.starts[t.name]} times in this run; leaving it")
                continue
            self.queue.appendleft(t)
