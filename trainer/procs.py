"""Processes on this host, as the trainer's and the launcher's stale-state checks see them."""

from __future__ import annotations

import os
from typing import Literal


def pid_state(pid: int) -> Literal["gone", "ours", "other user"]:
    """Whether process ``pid`` exists on this host, found by signal 0 (nothing is sent):
    ``"gone"``, ``"ours"`` (this user may signal it) or ``"other user"`` (it exists, but
    belongs to someone else)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return "gone"
    except PermissionError:
        return "other user"
    return "ours"


def process_age() -> float | None:
    """Seconds since this process started (Linux ``/proc``: its start tick and the uptime), so
    interpreter start-up and imports count; None where ``/proc`` is not there."""
    try:
        with open("/proc/self/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        start = int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: starttime
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return max(uptime - start, 0.0)
