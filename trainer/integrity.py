"""Integrity records of checkpoints: ``checkpoints/<step>/integrity.json``, written before the
step commits and checked before every restore (the trainer's and the evaluator's).

Why a record of our own: orbax 0.12 (zarr3 arrays in OCDBT) protects only each shard's *index*
with a crc32c codec; the chunk data is zstd without a content checksum, and ``_METADATA`` and
the OCDBT manifests carry no digest. Measured: ten flipped bytes inside a compressed chunk
restore without an error, as other numbers; a trimmed or missing data file fails deep inside
TensorStore with dozens of lines of asyncio noise (docs/reliability.md).

What is recorded: the size and sha256 of every file of the step directory once every process
has written its part and before orbax commits it. orbax calls
``AsyncOptions.post_finalization_callback`` at exactly that point, on the primary process, after
the cross-process barrier and before the temporary directory is renamed into place (or the
commit marker is written), so a committed step saved by this version always holds its record:
there is no window in which a reader sees the step without one. ``_CHECKPOINT_METADATA`` is
left out (orbax rewrites it at commit with a timestamp); files added later (the commit marker)
are ignored by the check. Whole files rather than one digest per array: the check needs no
restore (so a damaged step is refused with one line before TensorStore reads it) and covers
the metadata the restore depends on as well as the data. The cost is one read of files that
are still in the page cache (docs/performance.md).

A step without a record (saved by an older version, or copied in from elsewhere) is not
refused: it is restored unverified, and the callers say so (``NO_RECORD``).
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import uuid
from pathlib import Path

from trainer import files
from trainer.files import atomic_write_json

RECORD = "integrity.json"
FORMAT = 1
METHOD = "sha256 and size of every file of the step directory, taken before orbax commits it"
VERIFIED = "verified"
NO_RECORD = "no integrity record (unverified)"
# Written or rewritten by orbax after the record is taken; never part of it.
_NOT_RECORDED = frozenset({RECORD, "_CHECKPOINT_METADATA", "commit_success.txt"})


class Damaged(Exception):
    """A checkpoint step whose files do not match its integrity record (one-line message)."""


def _digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _rel(p: Path, step_dir: Path) -> str:
    return os.fspath(p)[len(os.fspath(step_dir)) :].lstrip("/")


def _files(step_dir: Path) -> list[Path]:
    return [p for p in files.walk_files(step_dir) if _rel(p, step_dir) not in _NOT_RECORDED]


def write_record(step_dir: str | os.PathLike, step: int) -> None:
    """Write ``<step_dir>/integrity.json`` (atomically) for the files there now."""
    step_dir = files.path(step_dir)
    recorded = {
        _rel(p, step_dir): {"size": files.size(p), "sha256": _digest(p)} for p in _files(step_dir)
    }
    record = {
        "format": FORMAT,
        "step": int(step),
        "method": METHOD,
        "saved": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "save_id": uuid.uuid4().hex,  # tells two saves of one step apart (fingerprint)
        "files": recorded,
    }
    atomic_write_json(step_dir / RECORD, record)


def read_record(step_dir: str | os.PathLike) -> dict | None:
    """The step's record; None when it has none; ``Damaged`` when it is unreadable."""
    path = files.path(step_dir) / RECORD
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise Damaged(f"its {RECORD} is unreadable ({type(e).__name__})") from None
    if not isinstance(record, dict) or not isinstance(record.get("files"), dict):
        raise Damaged(f"its {RECORD} is not an integrity record")
    return record


def _problem(step_dir: Path, rel: str, want: dict) -> str | None:
    p = step_dir / rel
    try:
        size = files.size(p)
    except FileNotFoundError:
        return f"{rel} is missing"
    if size != want.get("size"):
        how = "truncated" if size < int(want.get("size") or 0) else "grown"
        return f"{rel} has {size} bytes, {want.get('size')} recorded ({how})"
    if _digest(p) != want.get("sha256"):
        return f"{rel} does not match its recorded sha256"
    return None


def verify(step_dir: str | os.PathLike) -> str:
    """``VERIFIED`` or ``NO_RECORD``; raises ``Damaged`` naming the first bad file (and how many
    more there are) when a recorded file is missing, of another size or another content."""
    step_dir = files.path(step_dir)
    if not step_dir.is_dir():
        raise Damaged(f"{step_dir} is missing")
    record = read_record(step_dir)
    if record is None:
        return NO_RECORD
    problems = [
        msg
        for rel, want in sorted(record["files"].items())
        if (msg := _problem(step_dir, rel, want if isinstance(want, dict) else {}))
    ]
    if problems:
        more = f" (and {len(problems) - 1} more file(s))" if len(problems) > 1 else ""
        raise Damaged(problems[0] + more)
    return VERIFIED


def fingerprint(step_dir: str | os.PathLike) -> str:
    """Which save of a step this directory holds: the record's digest, or (without a record)
    the directory's inode and modification time. A step moved aside and saved again gets a new
    fingerprint, so the evaluator retries an error record made for the old one."""
    step_dir = files.path(step_dir)
    try:
        return "sha256:" + _digest(step_dir / RECORD)[:16]
    except OSError:
        try:
            st = step_dir.stat()
        except OSError:
            return "absent"
        if files.is_remote(step_dir):  # no inodes in an object store
            return f"mtime:{files.mtime(step_dir / '_CHECKPOINT_METADATA')}"
        return f"inode:{st.st_ino}:{st.st_mtime_ns}"
