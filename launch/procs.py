"""This host's trainer processes: whether a recorded pid is still a live trainer, the last
line of a log (the one-line reason a process died), and stopping child processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainer.procs import pid_state


def pid_alive(pid: Any) -> bool:
    """Whether ``pid`` is a live process on this host that looks like a trainer."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    state = pid_state(pid)
    if state != "ours":
        return state == "other user"
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # a reused pid is some other program
        try:
            return b"trainer" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def is_dead(status: Mapping[str, Any]) -> bool:
    """A 'running' status whose process is gone (only decidable for this host's processes)."""
    return status.get("host") == socket.gethostname() and not pid_alive(status.get("pid"))


def last_line(path: str | os.PathLike, limit: int = 300) -> str:
    """The last non-empty line of a log file ('' if none): the one-line reason a process died."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines()]
    except OSError:
        return ""
    lines = [ln for ln in lines if ln]
    return lines[-1][:limit] if lines else ""


def signal_tree(proc: subprocess.Popen, sig: int) -> None:
    """``sig`` to ``proc``'s process group when it leads one (started in a session of its own,
    as trainers are: their data workers go too), else to ``proc`` alone."""
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_all(procs: Sequence[subprocess.Popen], grace_s: float) -> None:
    """SIGTERM each (``signal_tree``), wait up to ``grace_s`` for all to exit (a second Ctrl-C
    cuts the wait short), SIGKILL what is left and reap it. Trainers save and say
    ``preempted`` on SIGTERM; the evaluator writes atomically, so it just stops."""
    for p in procs:
        signal_tree(p, signal.SIGTERM)
    deadline = time.time() + grace_s
    try:
        while any(p.poll() is None for p in procs) and time.time() < deadline:
            time.sleep(0.2)
    except KeyboardInterrupt:
        print("launch: second interrupt; killing", flush=True)
    for p in procs:
        if p.poll() is None:
            signal_tree(p, signal.SIGKILL)
    for p in procs:
        p.wait()
