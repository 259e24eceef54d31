"""Where a run comes from: the code's git commit (and whether the tree had uncommitted changes)
and the JAX devices it runs on, for status.json (``source``, ``jax``) and the first lines of
train.log (docs/file-contracts.md).

The commit comes from ``git`` in the project's own directory; a tree without git (the TPU
tarball, launch/tpu_build.py) carries it in ``BUILD_INFO.json`` at its top, which is read then.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
BUILD_INFO = "BUILD_INFO.json"


def git(repo: Path, *args: str) -> str | None:
    """``git <args>``'s stdout in ``repo``; None when git is missing or fails (not a checkout)."""
    try:
        r = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return r.stdout if r.returncode == 0 else None


def source(repo: Path = PROJECT) -> dict[str, Any]:
    """``{"commit", "dirty", "from"}``: from git (``"from": "git"``), else from the tree's
    ``BUILD_INFO.json`` (``"from": "BUILD_INFO.json"``), else nulls (``"from": null``)."""
    commit = git(repo, "rev-parse", "HEAD")
    if commit:
        status = git(repo, "status", "--porcelain")  # untracked files count, as in BUILD_INFO
        dirty = bool(status.strip()) if status is not None else None
        return {"commit": commit.strip(), "dirty": dirty, "from": "git"}
    try:
        info = json.loads((repo / BUILD_INFO).read_text())
    except (OSError, ValueError):
        info = None
    if isinstance(info, dict) and info.get("git_commit"):
        return {"commit": info["git_commit"], "dirty": info.get("git_dirty"), "from": BUILD_INFO}
    return {"commit": None, "dirty": None, "from": None}


def devices() -> dict[str, Any]:
    """The JAX platform and devices this process sees (call after ``jax.distributed``)."""
    import jax

    local = jax.local_devices()
    return {
        "platform": jax.default_backend(),
        "device_kind": local[0].device_kind if local else None,
        "devices": jax.device_count(),
        "local_devices": len(local),
        "processes": jax.process_count(),
    }


def header(src: dict[str, Any], dev: dict[str, Any]) -> str:
    """The first line of a run's log: ``code <commit> (uncommitted changes) | jax cpu: 1 device
    (cpu), 1 process``."""
    commit = (src.get("commit") or "unknown")[:12]
    dirty = " (uncommitted changes)" if src.get("dirty") else ""
    n, p = dev["devices"], dev["processes"]
    return (
        f"code {commit}{dirty} | jax {dev['platform']}: {n} device{'s' * (n != 1)} "
        f"({dev['device_kind']}), {p} process{'es' * (p != 1)}"
    )


def run_trace(config: Any) -> dict[str, Any]:
    """``{"source", "jax", "config"}`` for status.json; process 0 prints them first (the header
    line, then ``config: <the resolved config as one JSON line>``)."""
    import jax

    trace = {"source": source(), "jax": devices(), "config": config.to_dict()}
    if jax.process_index() == 0:
        print(header(trace["source"], trace["jax"]), flush=True)
        print(f"config: {json.dumps(trace['config'], sort_keys=True)}", flush=True)
    return trace
