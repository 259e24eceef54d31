"""Data for ``python -m trainer.bench``: a synthetic ImageNet-64-shaped split, written as a
prepared split (``trainer.data.prepared``), so a GPU bench needs nothing downloaded.

The images are not noise: each is a smooth random colour field (an 8x8 grid of random colours,
upsampled) plus fine-grained noise and a class-dependent tint, so compression-like statistics,
value ranges and memory access are those of real uint8 photographs, and a model can learn a
little from the labels. Writing streams chunk by chunk (``SplitWriter``), so a split larger than
host memory can be made, and reading is a memory map like any prepared split.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trainer.data.prepared import META, SplitWriter, read_split

SYNTHETIC_SOURCE = "synthetic-bench"
# ImageNet (64x64) train/val sizes: the synthetic eval split keeps their ratio, so the
# trainer's per-epoch eval costs the same fraction of the loop as on ImageNet, and the bench
# reports what one ImageNet-64 epoch takes at the measured end-to-end rate.
CHUNK = 4096


def synthetic_images(rng: np.random.Generator, labels: np.ndarray, size: int) -> np.ndarray:
    """uint8 (len(labels), size, size, 3): smooth colour fields + noise + a per-class tint."""
    n = labels.shape[0]
    cells = max(1, size // 8)
    rep = -(-size // cells)
    base = rng.integers(0, 256, (n, cells, cells, 3), dtype=np.uint8).astype(np.int16)
    img = np.repeat(np.repeat(base, rep, axis=1), rep, axis=2)[:, :size, :size]
    tint = ((labels.astype(np.int64)[:, None] * np.array([37, 91, 53])) % 64 - 32).astype(np.int16)
    img = img + tint[:, None, None, :] + rng.integers(-12, 13, img.shape, dtype=np.int16)
    return np.clip(img, 0, 255).astype(np.uint8)


def split_dir(prepared_dir: str | os.PathLike, dataset: str, size: int, split: str) -> Path:
    """Where ``trainer.data`` looks for a prepared split (``<dir>/<dataset>/<size>/<split>``)."""
    return Path(prepared_dir) / dataset / str(size) / split


def write_synthetic_split(
    prepared_dir: str | os.PathLike,
    *,
    dataset: str,
    split: str,
    count: int,
    size: int,
    num_classes: int,
    seed: int = 0,
) -> Path:
    """Write (once) a synthetic prepared split; an existing one of the same shape is kept."""
    final = split_dir(prepared_dir, dataset, size, split)
    if (final / META).exists():
        existing = read_split(final)
        if (
            existing.num_examples == count
            and existing.meta.get("source") == SYNTHETIC_SOURCE
            and existing.num_classes == num_classes
        ):
            return final
        raise ValueError(
            f"{final} already holds a {existing.meta.get('source')} split of "
            f"{existing.num_examples} images; delete it or pass another --data-dir"
        )
    rng = np.random.default_rng(seed)
    with SplitWriter(final, size) as w:
        for start in range(0, count, CHUNK):
            labels = rng.integers(0, num_classes, min(CHUNK, count - start)).astype(np.int32)
            w.append(synthetic_images(rng, labels, size), labels)
        return w.finish(
            {
                "dataset": dataset,
                "split": split,
                "num_classes": int(num_classes),
                "source": SYNTHETIC_SOURCE,
                "source_dir": "",
                "source_split": f"synthetic seed {seed}",
            }
        )
