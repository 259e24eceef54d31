"""The prepared-split format: what every source writes and the input pipeline memory-maps.

A split is the directory ``<prepared_dir>/<dataset>/<image_size>/<split>/`` holding

* ``images.npy``: uint8 (N, H, W, 3), H = W = image_size;
* ``labels.npy``: int32 (N,), in [0, num_classes);
* ``meta.json``: ``dataset, split, count, image_size, num_classes, source, source_dir,
  source_split, checksum, checksum_method, created``.

``checksum`` is the sha256 of the shape, all labels and the images at up to 1024 evenly spaced
indices (a sample, so reading it back costs milliseconds even for ImageNet's 15.7 GB).

A split is written into a hidden temporary directory beside its final place and renamed into
place when complete, so a killed preparation leaves nothing that is later read. ``images.npy`` is
streamed to disk batch by batch (the real ImageNet-64 train split never sits in RAM): the .npy
header is written first with a count of 0 and rewritten at the end; numpy pads headers so the
count can grow in place without moving the data.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainer.data.errors import DataError
from trainer.files import atomic_write_json
from trainer.procs import pid_state

IMAGES = "images.npy"
LABELS = "labels.npy"
META = "meta.json"
CHECKSUM_SAMPLES = 1024
CHECKSUM_METHOD = (
    f"sha256(shape, all labels, images at <= {CHECKSUM_SAMPLES} evenly spaced indices)"
)


@dataclass(frozen=True)
class Split:
    """One prepared split: ``images`` (N,H,W,3) uint8 (a read-only memmap unless a subset was
    taken, which is copied into memory), ``labels`` (N,) int32, ``meta`` (meta.json's dict)."""

    images: np.ndarray
    labels: np.ndarray
    meta: dict[str, Any]
    path: Path | None = None
    indices: np.ndarray | None = field(default=None, repr=False)  # rows of the full split

    @property
    def num_examples(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def image_size(self) -> int:
        return int(self.images.shape[1])


def one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def checksum(images: np.ndarray, labels: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(repr(tuple(images.shape)).encode())
    h.update(np.ascontiguousarray(labels, dtype="<i4").tobytes())
    n = images.shape[0]
    if n:
        rows = np.unique(np.linspace(0, n - 1, min(n, CHECKSUM_SAMPLES)).astype(np.int64))
        h.update(np.ascontiguousarray(images[rows]).tobytes())
    return h.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_temporaries(final_dir: Path) -> None:
    """Delete temporary directories of ``final_dir`` left by killed writers on this host.

    Their names carry host and pid; those of other hosts (a shared filesystem) are left alone.
    """
    prefix = f".{final_dir.name}.tmp-{socket.gethostname()}-"
    for p in final_dir.parent.glob(f"{glob.escape(prefix)}*"):
        pid = p.name[len(prefix) :].split("-")[0]
        if pid.isdigit() and pid_state(int(pid)) == "gone":
            shutil.rmtree(p, ignore_errors=True)


class SplitWriter:
    """Streams one split into a temporary directory and renames it into ``final_dir``.

    Use as a context manager: an exception (or a kill) leaves only the hidden temporary
    directory, which no reader looks at.
    """

    def __init__(self, final_dir: str | os.PathLike, image_size: int):
        self.final_dir = Path(final_dir)
        self.image_size = int(image_size)
        self.final_dir.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.final_dir)
        self.tmp_dir = self.final_dir.parent / (
            f".{self.final_dir.name}.tmp-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        )
        self.tmp_dir.mkdir()
        self.count = 0
        self._labels: list[np.ndarray] = []
        self._f = open(self.tmp_dir / IMAGES, "wb")
        self._header_len = self._write_header(0)

    def _write_header(self, count: int) -> int:
        self._f.seek(0)
        shape = (count, self.image_size, self.image_size, 3)
        np.lib.format.write_array_header_1_0(
            self._f, {"descr": "|u1", "fortran_order": False, "shape": shape}
        )
        return self._f.tell()

    def append(self, images: np.ndarray, labels: np.ndarray) -> None:
        s = self.image_size
        if images.dtype != np.uint8 or images.shape[1:] != (s, s, 3):
            raise DataError(
                f"internal: batch of {images.dtype} {images.shape} written to a split of "
                f"uint8 (N, {s}, {s}, 3)"
            )
        if labels.shape != (images.shape[0],):
            raise DataError(f"internal: {labels.shape} labels for {images.shape[0]} images")
        self._f.write(np.ascontiguousarray(images).data)
        self._labels.append(np.asarray(labels, np.int32))
        self.count += images.shape[0]

    def finish(self, meta: dict[str, Any]) -> Path:
        """Complete the split and rename it into place; returns the final directory.

        If another process finished the same split first, its copy is kept and ours dropped.
        """
        if self.count == 0:
            raise DataError(f"{meta.get('dataset')} {meta.get('split')}: the source has no images")
        if self._write_header(self.count) != self._header_len:
            raise DataError("internal: the .npy header changed length; cannot finish in place")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
        labels = np.concatenate(self._labels)
        with open(self.tmp_dir / LABELS, "wb") as f:
            np.save(f, labels)
            f.flush()
            os.fsync(f.fileno())
        images = np.load(self.tmp_dir / IMAGES, mmap_mode="r")
        meta = {
            **meta,
            "count": int(self.count),
            "image_size": self.image_size,
            "checksum": checksum(images, labels),
            "checksum_method": CHECKSUM_METHOD,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        del images
        atomic_write_json(self.tmp_dir / META, meta)
        _fsync_dir(self.tmp_dir)
        try:
            os.rename(self.tmp_dir, self.final_dir)
        except OSError:
            if not (self.final_dir / META).exists():
                raise
            shutil.rmtree(self.tmp_dir, ignore_errors=True)  # another process won the race
        _fsync_dir(self.final_dir.parent)
        return self.final_dir

    def abort(self) -> None:
        if not self._f.closed:
            self._f.close()
        shutil.rmtree(self.tmp_dir, ignore_errors=True)

    def __enter__(self) -> SplitWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def replace_dir(new_dir: Path, final_dir: Path) -> None:
    """Swap a finished split into ``final_dir``, replacing an older one (``--force``)."""
    old = final_dir.parent / f".{final_dir.name}.old-{uuid.uuid4().hex[:8]}"
    if final_dir.exists():
        os.rename(final_dir, old)
    os.rename(new_dir, final_dir)
    shutil.rmtree(old, ignore_errors=True)


def read_split(path: str | os.PathLike) -> Split:
    """Memory-map a prepared split, checking it against its meta.json (one-line DataError)."""
    path = Path(path)
    meta_file, images_file, labels_file = path / META, path / IMAGES, path / LABELS
    redo = f"delete {path} and prepare it again"
    try:
        meta = json.loads(meta_file.read_text())
    except FileNotFoundError:
        raise DataError(f"{meta_file} is missing; {redo}") from None
    except (OSError, ValueError) as e:
        raise DataError(f"{meta_file} is not valid JSON ({one_line(e)}); {redo}") from None
    needed = ("dataset", "split", "count", "image_size", "num_classes", "checksum")
    missing = [k for k in needed if k not in meta]
    if missing:
        raise DataError(f"{meta_file} lacks {', '.join(missing)}; {redo}")
    try:
        images = np.load(images_file, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{images_file} is missing; {redo}") from None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{images_file} is truncated or corrupt ({one_line(e)}); {redo}") from None
    try:
        labels = np.load(labels_file, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{labels_file} is missing; {redo}") from None
    except (OSError, ValueError, EOFError) as e:
        raise DataError(f"{labels_file} is truncated or corrupt ({one_line(e)}); {redo}") from None
    s, n, c = int(meta["image_size"]), int(meta["count"]), int(meta["num_classes"])
    if images.dtype != np.uint8 or images.shape != (n, s, s, 3):
        raise DataError(
            f"{images_file} holds {images.dtype} {images.shape}; meta.json says uint8 "
            f"({n}, {s}, {s}, 3); {redo}"
        )
    if labels.dtype != np.int32 or labels.shape != (n,):
        raise DataError(
            f"{labels_file} holds {labels.dtype} {labels.shape}; meta.json says int32 ({n},); {redo}"
        )
    if n and (labels.min() < 0 or labels.max() >= c):
        raise DataError(
            f"{labels_file} has labels in [{labels.min()}, {labels.max()}]; allowed [0, {c - 1}] "
            f"(num_classes={c} in meta.json); {redo}"
        )
    if checksum(images, labels) != meta["checksum"]:
        raise DataError(f"{path}: the files do not match the checksum in meta.json; {redo}")
    return Split(images=images, labels=labels, meta=meta, path=path)
