"""The project tarball the TPU VMs get (launch/tpu/setup.sh), with ``BUILD_INFO.json`` inside.

``python -m launch.tpu_build TARBALL`` packs the working tree as git sees it (tracked and
untracked files, not ignored ones: ``git ls-files -co --exclude-standard``) and adds
``BUILD_INFO.json`` at the top of the tree, because git does not travel with the files: a
trainer on a worker reads the commit it runs from there (format: docs/file-contracts.md)::

    {"git_commit": "<40 hex>" | null, "git_dirty": true | false | null, "git_branch": "main" | null,
     "git_changes": ["M launch/tpu.py", "?? notes.txt"], "packed": "<ISO time>",
     "packed_on": "<host>", "files": 145}

``git_dirty`` is true when the tree differs from the commit in any packed file (modified, staged,
deleted or untracked); ``git_changes`` lists the first 50 such lines of ``git status
--porcelain``.
"""

from __future__ import annotations

import io
import json
import socket
import sys
import tarfile
from pathlib import Path
from typing import Any

from sweeps.base import ConfigError
from trainer.files import atomic_write
from trainer.provenance import BUILD_INFO
from trainer.provenance import git as _git
from trainer.status import now_iso

REPO = Path(__file__).resolve().parent.parent
MAX_CHANGES = 50


def files(repo: Path = REPO) -> list[str]:
    """The paths to pack, relative to ``repo`` (``ConfigError`` outside a git checkout)."""
    out = _git(repo, "ls-files", "-co", "--exclude-standard", "-z")
    if out is None:
        raise ConfigError(f"{repo} is not a git checkout; the TPU launcher packs what git lists")
    # deleted-but-tracked files are still listed: pack what exists
    return [p for p in out.split("\0") if p and p != BUILD_INFO and (repo / p).is_file()]


def build_info(repo: Path = REPO, count: int | None = None) -> dict[str, Any]:
    """What ``BUILD_INFO.json`` holds for ``repo`` now."""
    commit = _git(repo, "rev-parse", "HEAD")
    status = _git(repo, "status", "--porcelain")
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD")
    changes = [ln for ln in (status or "").splitlines() if ln.strip()]
    return {
        "git_commit": commit.strip() if commit else None,
        "git_dirty": bool(changes) if status is not None else None,
        "git_branch": branch.strip() if branch and branch.strip() != "HEAD" else None,
        "git_changes": changes[:MAX_CHANGES],
        "packed": now_iso(),
        "packed_on": socket.gethostname(),
        "files": count,
    }


def pack(tarball: str | Path, repo: Path = REPO) -> dict[str, Any]:
    """Write ``tarball`` (gzip; atomically) with the tree and ``BUILD_INFO.json``; returns the
    build info."""
    paths = files(repo)
    info = build_info(repo, len(paths))
    data = (json.dumps(info, indent=1) + "\n").encode()

    def write(f) -> None:
        with tarfile.open(fileobj=f, mode="w:gz") as tar:
            for p in paths:
                tar.add(repo / p, arcname=p, recursive=False)
            entry = tarfile.TarInfo(BUILD_INFO)
            entry.size, entry.mode = len(data), 0o644
            tar.addfile(entry, io.BytesIO(data))

    atomic_write(tarball, write)
    return info


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m launch.tpu_build TARBALL", file=sys.stderr)
        return 2
    info = pack(argv[0])
    dirty = {True: ", with uncommitted changes", False: "", None: ""}[info["git_dirty"]]
    print(
        f"packed {info['files']} files at {info['git_commit'] or 'no commit'}{dirty} -> {argv[0]}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
