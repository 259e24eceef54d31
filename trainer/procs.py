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
