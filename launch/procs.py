"""This host's trainer processes: whether a recorded pid is still a live trainer, and the last
line of a log (the one-line reason a process died)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
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
