"""The bench's data: a synthetic ImageNet-64-shaped split, written as a prepared split
(``trainer.data.prepared``), so a GPU bench needs nothing downloaded; and the ``prepare`` part,
which finds the device and versions and makes (once) the data the other parts read.

The images are not noise: each is a smooth random colour field (an 8x8 grid of random colours,
upsampled) plus fine-grained noise and a class-dependent tint, so compression-like statistics,
value ranges and memory access are those of real uint8 photographs, and a model can learn a
little from the labels. Writing streams chunk by chunk (``SplitWriter``), so a split larger than
host memory can be made, and reading is a memory map like any prepared split.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import device_info
from trainer import status
from trainer.data.imagenet64 import TRAIN_EXAMPLES as IMAGENET_TRAIN
from trainer.data.imagenet64 import VAL_EXAMPLES as IMAGENET_VAL
from trainer.data.prepared import META, SplitWriter, read_split

# ImageNet-64's train/val sizes (IMAGENET_*): the synthetic eval split keeps their ratio, so the
# trainer's per-epoch eval costs the same fraction of the loop as on ImageNet, and the bench
# reports what one ImageNet-64 epoch takes at the measured end-to-end rate.

SYNTHETIC_SOURCE = "synthetic-bench"
SYNTHETIC_EXAMPLES = 131072  # about a tenth of ImageNet-64 train: 1.6 GB at 64x64
VERSION_PACKAGES = ("jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "numpy", "ml-collections")
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


def _write_splits(root: str | os.PathLike, counts: dict[str, int], data: dict[str, Any]) -> None:
    for split, count in counts.items():
        write_synthetic_split(
            root,
            dataset=data["dataset"],
            split=split,
            count=count,
            size=data["size"],
            num_classes=data["num_classes"],
        )


def _bench_data(args: dict[str, Any], bench_dir: Path, backend: str) -> dict[str, Any]:
    """What the parts train and score on: the prepared Fashion-MNIST (a CPU's default) or a
    synthetic ImageNet-64-shaped split written under ``bench_dir`` (an accelerator's)."""
    from sweeps.base import config_from
    from trainer.data import load_split

    kind = args["data"]
    if kind == "auto":
        kind = "fashion_mnist" if backend == "cpu" else "synthetic"
    size = int(args["size"])
    if kind == "fashion_mnist":
        prepared_dir = args["data_dir"]
        overrides = {"data.image_size": size, "data.prepared_dir": prepared_dir}
        cfg = config_from("embedded", overrides).data
        train = load_split(cfg, "train")
        load_split(cfg, "eval")
        data = {"preset": "embedded", "dataset": "fashion_mnist", "num_classes": 10}
        examples, source = train.num_examples, train.meta.get("source", "?")
    else:
        data = {"preset": "paper", "dataset": "imagenet64", "num_classes": 1000}
        prepared_dir = args["data_dir"] or str(bench_dir / "synthetic")
        examples = int(args["examples"]) or SYNTHETIC_EXAMPLES
        eval_count = max(1000, round(examples * IMAGENET_VAL / IMAGENET_TRAIN))
        counts = {"train": examples, "eval": eval_count}
        _write_splits(prepared_dir, counts, {**data, "size": size})
        source = SYNTHETIC_SOURCE
    return {
        "kind": kind,
        **data,
        "prepared_dir": str(prepared_dir),
        "examples": int(examples),
        "source": source,
        "dtype": args["dtype"] or ("float32" if backend == "cpu" else "bfloat16"),
    }


def _memory_splits(args: dict[str, Any], bench_dir: Path, data: dict[str, Any]) -> list[dict]:
    """The memory part's synthetic splits of N and 2N images (written once)."""
    out = []
    size = int(args["size"])
    base = int(args.get("memory_examples") or 0) or data["examples"]
    for n in (base, 2 * base):
        if data["kind"] == "synthetic" and n == data["examples"]:  # the bench's own split is N
            out.append({"examples": n, "prepared_dir": data["prepared_dir"]})
            continue
        root = bench_dir / f"memory-{data['dataset']}-{size}-{n}"
        _write_splits(root, {"train": n, "eval": 1000}, {**data, "size": size})
        out.append({"examples": n, "prepared_dir": str(root)})
    return out


def prepare(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``prepare`` part: device, versions, and the bench's data prepared (once) on disk."""
    import jax

    args = spec["args"]
    bench_dir = Path(spec["bench_dir"])
    data = _bench_data(args, bench_dir, jax.default_backend())
    if "memory" in [p.strip() for p in args["parts"].split(",")]:
        data["memory_splits"] = _memory_splits(args, bench_dir, data)
    return {
        "device": device_info(),
        "versions": status.versions(VERSION_PACKAGES, absent="absent"),
        "data": data,
    }
