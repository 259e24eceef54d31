"""Faults to inject into checkpoints and file systems, for tests/test_faults.py and the
reliability table (tests/reliability_table.py)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path


def ctrl_c_able() -> None:
    """``preexec_fn`` for a process a test interrupts with SIGINT: SIGINT at its default and
    unblocked, as a terminal's Ctrl-C finds it. In the whole suite on two pytest-xdist workers,
    a worker passed SIGINT on ignored or blocked (both interrupt tests failed together; alone,
    or after the report's tests, they pass); the test that leaves it so is not found yet."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])


def data_files(step_dir: Path) -> list[Path]:
    """The array data files of an orbax step (OCDBT ``d/`` files), largest first."""
    files = [p for p in Path(step_dir).rglob("*") if p.is_file() and p.parent.name == "d"]
    return sorted(files, key=lambda p: (-p.stat().st_size, str(p)))


def flip_bytes(step_dir: Path) -> str:
    """Flip 8 bytes in the middle of the largest data file (the size stays the same)."""
    path = data_files(step_dir)[0]
    data = bytearray(path.read_bytes())
    mid = len(data) // 2
    for i in range(mid, min(mid + 8, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))
    return "8 bytes flipped in the largest data file"


def truncate(step_dir: Path) -> str:
    path = data_files(step_dir)[0]
    os.truncate(path, path.stat().st_size // 2)
    return "largest data file cut to half its size"


def delete_data(step_dir: Path) -> str:
    data_files(step_dir)[0].unlink()
    return "largest data file deleted"


def delete_metadata(step_dir: Path) -> str:
    (Path(step_dir) / "default" / "_METADATA").unlink()
    return "default/_METADATA deleted"


DAMAGE = {
    "flip": flip_bytes,
    "truncate": truncate,
    "delete": delete_data,
    "metadata": delete_metadata,
}


def is_root() -> bool:
    return os.geteuid() == 0


@contextlib.contextmanager
def small_filesystem(path: Path, size: str = "3m"):
    """A tmpfs of ``size`` mounted at ``path`` (root only): writes past it fail with ENOSPC."""
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` read-only: a read-only bind mount for root (who ignores file modes), else the
    write bits taken off the directory and its subdirectories."""
    path = Path(path)
    if is_root():
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
            yield path
        finally:
            subprocess.run(["umount", "-l", str(path)], check=False)
        return
    dirs = [path, *(p for p in path.rglob("*") if p.is_dir())]
    modes = {d: d.stat().st_mode for d in dirs}
    for d in dirs:
        d.chmod(modes[d] & ~0o222)
    try:
        yield path
    finally:
        for d in reversed(dirs):
            d.chmod(modes[d])
