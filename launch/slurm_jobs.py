"""The submitit jobs of the Slurm launcher and their requeue protocol.

Each array task runs the trainer as a child process (the exact argv of ``Trial.command``) in a
``TrialJob``, which follows submitit's checkpointing protocol:

* time limit: Slurm sends USR2 ``signal_delay_s`` before the end (submitit's ``--signal``);
  submitit calls ``TrialJob.checkpoint()``, which sends SIGTERM to the trainer, waits for its
  clean save (status ``preempted``, exit 0) and returns a ``DelayedSubmission`` of itself;
  submitit then requeues the job, and the trainer resumes from its workdir by itself.
* preemption, ``scancel --signal=TERM``, ``scontrol requeue``: the trainer gets SIGTERM from
  Slurm directly and saves; when the job is still RUNNING afterwards (nobody requeued or
  cancelled it) the task requeues itself with ``scontrol requeue``. A cancelled job stays
  cancelled.

The trainer ignores USR2 (it is set to SIG_IGN before exec), so only the wrapper acts on it.
The evaluator's job is a plain ``Command`` with the same protocol. ``PackedTrials`` runs K
``TrialJob``s at once in one task (``--trials-per-device K``: they share its accelerator, each
with its memory share in ``env``), and follows the protocol for all of them together.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainer import files


def _ignore_usr_signal() -> None:
    """In the trainer child, before exec: Slurm's USR2 warning is for the wrapper only."""
    signal.signal(_usr_signal(), signal.SIG_IGN)


def _usr_signal() -> signal.Signals:
    return getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"))


class Command:
    """A submitit job that runs argv lists one after the other as child processes in ``cwd``.

    On a time limit or preemption it stops the running child with SIGTERM, waits for it and
    asks to be requeued (submitit's checkpointing protocol); the commands must resume by
    themselves, as the trainer and evaluator do from their run directories."""

    def __init__(
        self,
        argvs: Sequence[Sequence[str]],
        cwd: str,
        stop_timeout_s: float = 80.0,
        log_path: str = "",
        env: dict[str, str] | None = None,
    ):
        self.argvs = [list(a) for a in argvs]
        self.cwd = cwd
        self.stop_timeout_s = stop_timeout_s
        self.log_path = log_path  # rank 0's child output is appended here ('' = the job's log)
        self.env = dict(env or {})  # added to the children's environment
        self._pid: int | None = None
        self._returncode: int | None = None

    def __getstate__(self) -> dict[str, Any]:  # the child process does not travel in the pickle
        return {**self.__dict__, "_pid": None, "_returncode": None}

    def __call__(self) -> list[int]:
        if _own_rank() != 0:
            # submitit only calls checkpoint() on rank 0; the other ranks pass the warning on.
            signal.signal(_usr_signal(), lambda *_: self._terminate())
        codes = []
        for argv in self.argvs:
            code = self._run(argv)
            codes.append(code)
            if code != 0:
                break
        return self._finish(codes)

    def _finish(self, codes: list[int]) -> list[int]:
        if codes[-1] in (-signal.SIGTERM, 128 + signal.SIGTERM) and _own_rank() == 0:
            # stopped by Slurm's SIGTERM (preemption): run again if nobody cancelled the job
            if _requeue_self():
                sys.exit(-1)
        if codes[-1] != 0:
            raise RuntimeError(f"{shlex.join(self.argvs[len(codes) - 1])} exited {codes[-1]}")
        return codes

    def _run(self, argv: list[str]) -> int:
        self._returncode = None
        out = None
        if self.log_path and _own_rank() == 0:
            log = Path(self.cwd, self.log_path)
            log.parent.mkdir(parents=True, exist_ok=True)
            out = open(log, "ab")  # closed once the child has it
            out.write(
                f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} {_job_id()} {shlex.join(argv)}\n".encode()
            )
            out.flush()
            print(f"{shlex.join(argv)}\n  output: {log}", flush=True)
        try:
            proc = subprocess.Popen(
                argv,
                cwd=self.cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT if out else None,
                preexec_fn=_ignore_usr_signal,
                env={**os.environ, **self.env} if self.env else None,
            )
        finally:
            if out:
                out.close()
        self._pid = proc.pid
        # Reap with os.waitpid rather than Popen.wait: a signal handler (checkpoint) waits for
        # the same child, and Popen.wait's internal lock would deadlock against it.
        while self._reap() is None:
            time.sleep(0.5)
        return self._returncode if self._returncode is not None else 1

    def _reap(self) -> int | None:
        if self._returncode is not None or self._pid is None:
            return self._returncode
        try:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:  # reaped by the other path already
            return self._returncode
        if pid == 0:
            return None
        self._returncode = os.waitstatus_to_exitcode(status)
        return self._returncode

    def _terminate(self) -> None:
        """SIGTERM to the running child, then wait (up to ``stop_timeout_s``) for it to exit."""
        if self._pid is None or self._reap() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid, signal.SIGTERM)
        deadline = time.monotonic() + self.stop_timeout_s
        while self._reap() is None and time.monotonic() < deadline:
            time.sleep(0.2)

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        self._terminate()
        return submitit.helpers.DelayedSubmission(
            Command(self.argvs, self.cwd, self.stop_timeout_s, self.log_path, self.env)
        )


class TrialJob(Command):
    """The submitit job of one trial: the trainer's argv, and the trial's status.json."""

    def __init__(
        self,
        argv: Sequence[str],
        cwd: str,
        status_path: str,
        name: str,
        log_path: str = "",
        env: dict[str, str] | None = None,
    ):
        super().__init__([argv], cwd, log_path=log_path, env=env)
        self.status_path = status_path
        self.name = name

    def fresh(self) -> TrialJob:
        """The same trial as a new job (what a requeue runs)."""
        return TrialJob(
            self.argvs[0], self.cwd, self.status_path, self.name, self.log_path, self.env
        )

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        self._terminate()
        return submitit.helpers.DelayedSubmission(self.fresh())

    def _state(self) -> str:
        path = Path(self.status_path)
        if not path.is_absolute():
            path = Path(self.cwd) / path
        try:
            return str((files.read_json(path, default={}) or {}).get("state", "?"))
        except (OSError, json.JSONDecodeError):
            return "unreadable"

    def _finish(self, codes: list[int]) -> list[int]:
        if _own_rank() != 0:  # status.json is rank 0's to write; the others report exit codes
            return super()._finish(codes)
        state = self._state()
        if state == "preempted" and _requeue_self():
            # Exit without a result, as submitit does after its own requeue; the job runs again.
            sys.exit(-1)
        if state != "done":
            raise RuntimeError(
                f"trial {self.name} ended {state} (exit {codes[-1]}); see {self.status_path}"
            )
        return codes


class PackedTrials:
    """K trials in one task, their trainers running at once on its accelerator
    (``--trials-per-device K``). Trials already done (a requeued task) are not run again; on a
    time limit every trainer is stopped (SIGTERM, clean save) and the task requeued; a
    preempted trainer requeues the task as ``TrialJob`` does. One node, one task."""

    def __init__(self, members: Sequence[TrialJob]):
        self.members = list(members)

    @property
    def name(self) -> str:
        return "+".join(m.name for m in self.members)

    def __call__(self) -> list[int]:
        todo = [m for m in self.members if m._state() not in ("done", "diverged")]
        codes: dict[str, int] = {}
        run = lambda m: codes.__setitem__(m.name, m._run(m.argvs[0]))  # noqa: E731
        threads = [threading.Thread(target=run, args=(m,), daemon=True) for m in todo]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        states = {m.name: m._state() for m in self.members}
        if "preempted" in states.values() and _requeue_self():
            sys.exit(-1)
        bad = {n: s for n, s in states.items() if s != "done"}
        if bad:
            said = ", ".join(f"{n} {s} (exit {codes.get(n, '-')})" for n, s in bad.items())
            raise RuntimeError(f"packed trials ended: {said}")
        return [codes.get(m.name, 0) for m in self.members]

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        import submitit

        stops = [threading.Thread(target=m._terminate) for m in self.members]
        for t in stops:
            t.start()
        for t in stops:
            t.join()
        return submitit.helpers.DelayedSubmission(PackedTrials([m.fresh() for m in self.members]))


def _own_rank() -> int:
    """This task's global rank (submitit's ``JobEnvironment().global_rank`` reads the same)."""
    return int(os.environ.get("SLURM_PROCID", "0") or 0)


def _job_id() -> str:
    array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    return f"{array}_{task}" if array and task else os.environ.get("SLURM_JOB_ID", "")


def _requeue_self() -> bool:
    """Requeue this job if it is still RUNNING (a SIGTERM that nobody followed with a requeue or
    a cancel, e.g. ``scancel --signal=TERM``); a cancelled or already requeued job is left be."""
    jid = _job_id()
    if not jid:
        return False
    try:
        info = subprocess.run(
            ["scontrol", "show", "job", "-o", jid], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    m = re.search(r"\bJobState=(\w+)", info)
    if not m or m.group(1) not in ("RUNNING", "PREEMPTED"):
        return m is not None and m.group(1) in ("REQUEUED", "PENDING")
    r = subprocess.run(["scontrol", "requeue", jid], capture_output=True, text=True, timeout=60)
    print(
        f"trial preempted: requeued job {jid} ({(r.stdout + r.stderr).strip() or 'ok'})", flush=True
    )
    return r.returncode == 0
