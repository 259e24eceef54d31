"""Local copies of data kept on ``gs://``: prepared splits and benchmark folders.

A prepared split is memory-mapped and a benchmark is thousands of small PNGs, so neither is read
from the bucket object by object: a ``gs://`` directory is copied once into the local cache,
``$PSWEEPS_CACHE_DIR`` (default ``~/.cache/perceptual-sweeps``), under the first 16 hex digits
of the sha256 of its URL, and read from there. The copy is reused while its marker file is
byte for byte the bucket's (a split's ``meta.json``, which holds the split's checksum; the
proxy's ``proxy.json``, which holds its version); a folder without a marker (BAPPS) is reused
once its copy completed (``.psweeps-copied``). A copy is made in a hidden folder beside and
renamed into place, so a killed copy is never read. What is built for a ``gs://`` place on first
use (a prepared split, the proxy) is built in the cache and uploaded, its marker last, so a
reader of the bucket sees the whole folder or none.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from trainer import files

CACHE_ENV = "PSWEEPS_CACHE_DIR"
DEFAULT_CACHE = "~/.cache/perceptual-sweeps"
COPIED = ".psweeps-copied"
_CHUNK = 16 << 20


def cache_root() -> Path:
    return Path(os.environ.get(CACHE_ENV) or DEFAULT_CACHE).expanduser()


def cache_dir(remote: str | os.PathLike) -> Path:
    """Where the local copy of the ``gs://`` directory ``remote`` lives."""
    url = os.fspath(remote).rstrip("/")
    return cache_root() / hashlib.sha256(url.encode()).hexdigest()[:16]


def copy_file(src: Path, dst: Path) -> None:
    """Stream one file between local disk and the bucket (either way), 16 MiB at a time."""
    if not files.is_remote(dst):
        dst.parent.mkdir(parents=True, exist_ok=True)
    with src.open("rb") as a, dst.open("wb") as b:
        shutil.copyfileobj(a, b, _CHUNK)


def _rel(p: Path, root: Path) -> str:
    return os.fspath(p)[len(os.fspath(root).rstrip("/")) + 1 :]


def fetch(
    remote: str | os.PathLike,
    marker: str | None = None,
    parts: Sequence[str] = ("",),
    local: Path | None = None,
) -> Path:
    """The local copy of the ``gs://`` directory ``remote`` (its sub-folders ``parts`` only;
    at ``local``, default ``cache_dir(remote)``), copied now unless the cache holds a current
    one (see the module doc). ``FileNotFoundError`` when ``remote`` lacks its ``marker``."""
    remote = files.path(remote)
    local = local or cache_dir(remote)
    want = (remote / marker).read_bytes() if marker else None
    if marker and (local / marker).is_file() and (local / marker).read_bytes() == want:
        return local
    if not marker and (local / COPIED).is_file():
        return local
    local.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{local.name}.", suffix=".tmp", dir=local.parent))
    try:
        for part in parts:
            src = remote / part if part else remote
            for f in files.walk_files(src):
                if _rel(f, remote) != marker:
                    copy_file(f, tmp / _rel(f, remote))
        if marker:
            (tmp / marker).write_bytes(want)
        else:
            (tmp / COPIED).write_text(os.fspath(remote) + "\n")
        _swap_in(tmp, local)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return local


def _swap_in(tmp: Path, local: Path) -> None:
    old = None
    if local.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{local.name}.", suffix=".old", dir=local.parent))
        os.rename(local, old / local.name)
    try:
        os.rename(tmp, local)
    except OSError:  # another process copied it meanwhile: theirs is as good
        if not local.exists():
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def upload(local: str | os.PathLike, remote: str | os.PathLike, marker: str) -> None:
    """Copy the local directory ``local`` to the ``gs://`` directory ``remote``, ``marker``
    last (readers take a folder without it as absent)."""
    local, remote = Path(local), files.path(remote)
    for f in files.walk_files(local):
        if _rel(f, local) != marker:
            copy_file(f, remote / _rel(f, local))
    copy_file(local / marker, remote / marker)
