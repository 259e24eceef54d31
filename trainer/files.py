"""Atomic file writes, JSON records and exclusive locks shared by every stage (trainer,
evaluator, launcher).

Every file another stage reads is written to a temporary name in the same directory, flushed,
fsynced and renamed over the target, so a process killed at any instant leaves either the old
file or the new one, never a torn one. (The standard library has the pieces but no single call.)
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; give the file the mode a plain open() would (shared clusters).
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_default) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The JSON at ``path``, or ``default`` when the file does not exist."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return default


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (a single write of a whole line, so readers never see half a record)."""
    line = json.dumps(record, sort_keys=True, default=_default) + "\n"
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every complete record of a JSON-lines file (a torn last line from a kill is skipped)."""
    out = []
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return out
    for line in text.splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


class Busy(Exception):
    """``FileLock.acquire``: another process holds the lock (``owner``: its "pid host")."""

    def __init__(self, owner: str):
        super().__init__(owner)
        self.owner = owner


class FileLock:
    """An exclusive, non-blocking ``flock`` on ``path`` (created), with the holder's "pid host"
    written inside for the refusal message. The kernel drops it when the process dies, so a
    kill leaves nothing stale. OSErrors (a directory that cannot be written) propagate."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f: IO[str] | None = None

    def acquire(self) -> FileLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = open(self.path, "a+")
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            owner = f.read().strip() or "?"
            f.close()
            raise Busy(owner) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()} {socket.gethostname()}")
        f.flush()
        self._f = f
        return self

    def release(self) -> None:
        if self._f is not None:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()
            self._f = None


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
