"""Atomic file writes, JSON records and exclusive locks shared by every stage (trainer,
evaluator, launcher).

Every file another stage reads is written to a temporary name in the same directory, flushed,
fsynced and renamed over the target, so a process killed at any instant leaves either the old
file or the new one, never a torn one. (The standard library has the pieces but no single call.)

Paths may be local or object-store URLs (``gs://bucket/...``, through ``etils.epath``): ``path``
turns what a user gave into the right object, and every helper here takes either. On GCS an
object write is atomic already (an upload becomes visible whole, when it completes), so there
the write goes straight to the object; a JSON-lines append rewrites the object (objects cannot
be appended to); ``FileLock`` cannot lock an object and only records its holder (see the class).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import socket
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

try:  # a dependency; a bare accelerator image may lack it (its wheel is per Python version)
    import orjson
except ImportError:  # pragma: no cover
    orjson = None


def is_remote(p: str | os.PathLike) -> bool:
    """Whether ``p`` is an object-store URL (``gs://...``) rather than a local path."""
    return "://" in os.fspath(p)


def path(p: str | os.PathLike) -> Path:
    """``p`` as a path object: ``etils.epath.Path`` for a URL (``Path("gs://b")`` would collapse
    the '//'), else a plain ``pathlib.Path``. Both have the pathlib methods the stages use."""
    if not is_remote(p):
        return Path(p)
    from etils import epath  # only for URLs: the launcher never needs it

    return epath.Path(os.fspath(p))  # type: ignore[return-value]


def remote_problem(p: str | os.PathLike) -> str | None:
    """For a URL, one line saying why its bucket cannot be used (missing, no access, no client
    library, the store unreachable), else None; local paths: None. Checked before any work."""
    if not is_remote(p):
        return None
    text = os.fspath(p)
    scheme, rest = text.split("://", 1)
    bucket = rest.split("/", 1)[0]
    if scheme != "gs" or not bucket:
        return f"{text}: only local paths and gs://<bucket>/<path> are supported"
    try:
        if not path(f"gs://{bucket}").exists():
            return f"{text}: the bucket gs://{bucket} does not exist (or is not visible)"
    except ImportError:
        return f"{text}: gs:// paths need gcsfs (pip install -e '.[gcs]')"
    except Exception as e:  # credentials, permissions, the network: the client's first line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return f"{text}: cannot reach the bucket gs://{bucket} ({first[:200]})"
    return None


def size(p: Path) -> int:
    """The size in bytes of the file ``p`` (epath's stat calls it ``length``)."""
    st = p.stat()
    return int(getattr(st, "st_size", getattr(st, "length", 0)) or 0)


def mtime(p: Path) -> float:
    """The modification time (epoch seconds) of ``p``."""
    st = p.stat()
    return float(getattr(st, "st_mtime", getattr(st, "mtime", 0.0)) or 0.0)


def walk_files(root: Path) -> list[Path]:
    """Every file under ``root``, sorted (epath's own walk drops the ``gs://`` of the paths)."""
    if not is_remote(root):
        return sorted(Path(r) / n for r, _, names in os.walk(root) for n in names)
    out: list[Path] = []
    for child in root.iterdir():
        out.extend(walk_files(child) if child.is_dir() else [child])
    return sorted(out, key=str)


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, then rename it over ``path``."""
    if is_remote(path):
        buf = io.BytesIO()
        write(buf)
        _path(path).write_bytes(buf.getvalue())
        return
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


def loads(data: bytes | str) -> Any:
    """``json.loads``, through orjson where it can (4x quicker: a study's report reads 74,000
    records); NaN and Infinity, which Python's json writes, only json itself reads."""
    if orjson is not None:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The JSON at ``path``, or ``default`` when the file does not exist."""
    try:
        return loads(_path(path).read_bytes())
    except FileNotFoundError:
        return default


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line (a single write of a whole line, so readers never see half a record)."""
    line = json.dumps(record, sort_keys=True, default=_default) + "\n"
    if is_remote(path):  # an object cannot be appended to: rewrite it whole
        p = _path(path)
        p.write_text((p.read_text() if p.exists() else "") + line)
        return
    with open(path, "a") as f:
        f.write(line)
        f.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every complete record of a JSON-lines file (a torn last line from a kill is skipped)."""
    out = []
    try:
        data = _path(path).read_bytes()
    except FileNotFoundError:
        return out
    for line in data.splitlines():
        try:
            out.append(loads(line))
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
    kill leaves nothing stale. OSErrors (a directory that cannot be written) propagate.

    On an object store (``gs://``) there is no lock: ``acquire`` writes the holder's "pid host"
    object (which also proves the folder can be written) and ``release`` deletes it, but a
    second process is not refused. One trainer per workdir and one evaluator per sweep are then
    the launcher's and the user's care (docs/file-contracts.md)."""

    def __init__(self, path: str | os.PathLike):
        self.path = _path(path)
        self._f: IO[str] | None = None
        self._remote = is_remote(path)

    def acquire(self) -> FileLock:
        if self._remote:
            self.path.write_text(f"{os.getpid()} {socket.gethostname()}")
            return self
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
        if self._remote:
            self.path.unlink(missing_ok=True)
            return
        if self._f is not None:
            fcntl.flock(self._f, fcntl.LOCK_UN)
            self._f.close()
            self._f = None


def _default(o: Any) -> Any:
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    if isinstance(o, os.PathLike):  # pathlib and etils.epath paths
        return os.fspath(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


_path = path  # for the functions above whose argument is called ``path``
