"""JAX's persistent compilation cache, shared by the trials of a sweep: compile once, not once
per trial.

``enable(workdir)`` turns it on before anything is compiled, in the directory ``where`` picks:

* ``$JAX_COMPILATION_CACHE_DIR`` when the user set it (JAX reads it itself);
* else ``$PSWEEPS_JAX_CACHE``: a directory, or ``0`` / ``off`` for no cache;
* else ``<workdir>/../.jax-cache``: for a trial of a sweep, ``<runs>/<sweep>/.jax-cache``, the
  directory every trial of the sweep shares (a hand-run trainer uses its workdir's parent); a
  workdir on a remote filesystem (``gs://...``) uses ``<tmp>/psweeps-jax-cache`` on this host
  instead (a lock on object storage is no lock).

Trials of one architecture that differ only in the traced hyperparameters (trainer/optim.py
``hyperparams``) lower to the same program, so the second one loads the first one's executables
instead of compiling them (docs/performance.md has the time to the first step).

Safe under concurrent writers: the cache is bounded (``MAX_BYTES``), which turns on JAX's LRU
cache (jax/_src/lru_cache.py), and that takes a ``filelock.FileLock`` (``fcntl`` on a local or
NFS path) on ``<cache>/.lockfile`` around every read and every write of an entry, so packed and
parallel trials never read an entry half written nor interleave two writes of one. Without a
bound JAX writes entries unlocked. An entry that cannot be read (a damaged file) is a warning and
a fresh compile, never a wrong program: entries are compressed (zstd / zlib) and keyed by a hash
of the program, the compile options, the backend and the jax version.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import jax

from trainer import files

ENV = "PSWEEPS_JAX_CACHE"
OFF = ("0", "off", "false", "no")
DIRNAME = ".jax-cache"
MAX_BYTES = 8 * 2**30  # LRU eviction past this (and the file lock that comes with it)


def where(workdir: str | os.PathLike) -> Path | None:
    """The cache directory for a trainer on ``workdir`` (module doc), None for none."""
    if os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return Path(os.environ["JAX_COMPILATION_CACHE_DIR"])
    value = os.environ.get(ENV, "").strip()
    if value.lower() in OFF:
        return None
    if value:
        return Path(value)
    if files.is_remote(workdir):
        return Path(tempfile.gettempdir()) / "psweeps-jax-cache"
    return Path(workdir).absolute().parent / DIRNAME


def enable(workdir: str | os.PathLike) -> Path | None:
    """Turn the persistent compilation cache on (before the first compile); its directory."""
    path = where(workdir)
    if path is None:
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    # Every program, however quick to compile: the sweep's trials share them all.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)  # needs filelock
    return path
