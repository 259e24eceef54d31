"""``load_split(data_cfg, "train"|"eval")``: find the prepared split, preparing it on first use."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from trainer import files
from trainer.data.errors import DataError
from trainer.data.prepared import META, Split, SplitWriter, read_split, replace_dir
from trainer.data.resize import to_rgb_size

DATASETS = ("fashion_mnist", "imagenet64", "tfds:<name>")
WHICH = ("train", "eval")
DEFAULT_PREPARED_DIR = "./data"
ENV_PREPARED_DIR = "PSWEEPS_DATA_DIR"


def known_dataset(name: str) -> bool:
    """Whether ``data.name`` names a source this layer reads (``DATASETS``)."""
    return name in DATASETS[:-1] or (name.startswith("tfds:") and len(name) > len("tfds:"))


def check_name(name: str) -> None:
    if not known_dataset(name):
        raise DataError(f"dataset {name!r} is unknown; allowed: {', '.join(DATASETS)}")


def prepared_root(data_cfg: Any) -> Path:
    """``data.prepared_dir``, else ``$PSWEEPS_DATA_DIR``, else ``./data`` (current directory)."""
    return resolve_prepared_dir(data_cfg.prepared_dir)


def resolve_prepared_dir(prepared_dir: str | None) -> Path:
    """The prepared-data root for a ``data.prepared_dir`` value ('' or None = the default)."""
    d = prepared_dir or os.environ.get(ENV_PREPARED_DIR) or DEFAULT_PREPARED_DIR
    return files.path(d) if files.is_remote(d) else Path(d).expanduser()


def dataset_dirname(name: str) -> str:
    """A filesystem-safe directory name: ``tfds:imagenet_resized/64x64`` -> ``tfds-imagenet_resized-64x64``."""
    return name.replace(":", "-").replace("/", "-")


def split_dir(data_cfg: Any, which: str) -> Path:
    return (
        prepared_root(data_cfg) / dataset_dirname(data_cfg.name) / str(data_cfg.image_size) / which
    )


def open_source(data_cfg: Any, which: str):
    """The source object for ``data_cfg.name``; checks its files exist before any work."""
    name = data_cfg.name
    check_name(name)
    if name == "fashion_mnist":
        from trainer.data.fashion_mnist import FashionMnistSource

        return FashionMnistSource(data_cfg.source_dir, which)
    if name == "imagenet64":
        from trainer.data.imagenet64 import Imagenet64Source

        return Imagenet64Source(data_cfg.source_dir, which)
    from trainer.data.tfds_source import TfdsSource

    return TfdsSource(name, data_cfg.source_dir, which, data_cfg.image_size)


def prepare_split(data_cfg: Any, which: str, force: bool = False) -> Path:
    """Prepare one split from its source into the prepared format; returns its directory."""
    if which not in WHICH:
        raise DataError(f"split {which!r} is unknown; allowed: {', '.join(WHICH)}")
    source = open_source(data_cfg, which)
    final = split_dir(data_cfg, which)
    size = int(data_cfg.image_size)
    target = final.parent / f".{final.name}.new" if force else final
    if force and target.exists():
        shutil.rmtree(target)
    bar = tqdm(
        total=source.count(),
        desc=f"preparing {data_cfg.name} {which} at {size}x{size}",
        unit="img",
        unit_scale=True,
        file=sys.stderr,
        dynamic_ncols=True,
        disable=not sys.stderr.isatty(),  # a bar in a log file (train.log) is noise
    )
    with bar, SplitWriter(target, size) as writer:
        for images, labels in source.batches():
            if labels.size and (labels.min() < 0 or labels.max() >= source.num_classes):
                raise DataError(
                    f"{source.source_dir}: labels in [{labels.min()}, {labels.max()}]; "
                    f"allowed 0..{source.num_classes - 1}"
                )
            writer.append(to_rgb_size(images, size), labels)
            bar.update(len(labels))
        done = writer.finish(
            {
                "dataset": data_cfg.name,
                "split": which,
                "num_classes": int(source.num_classes),
                "source": source.source,
                "source_dir": source.source_dir,
                "source_split": source.source_split,
            }
        )
    if bar.disable:
        print(
            f"prepared {data_cfg.name} {which} at {size}x{size}: {source.count()} images",
            file=sys.stderr,
        )
    if force:
        replace_dir(done, final)
    return final


def stratified_subset(labels: np.ndarray, n: int) -> np.ndarray:
    """Sorted row indices of a deterministic class-balanced subset of ``n`` rows.

    Rows are ranked within their class in file order and taken by (rank, row), so class counts
    differ by at most one (a class with too few rows gives all it has, the rest fill the gap).
    """
    order = np.argsort(labels, kind="stable")
    sorted_labels = labels[order]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")
    rank = np.empty_like(order)
    rank[order] = np.arange(len(labels)) - starts
    chosen = np.lexsort((np.arange(len(labels)), rank))[:n]
    return np.sort(chosen)


def class_subset(num_classes: int, k: int, seed: int) -> np.ndarray:
    """The ``k`` class ids (sorted) that ``data.classes=k`` trains on: the first ``k`` of a
    permutation of ``range(num_classes)`` by numpy's PCG64 seeded with (``data.class_seed``,
    ``num_classes``), so for one seed a smaller subset lies inside a larger one."""
    if not 0 < k <= num_classes:
        raise DataError(f"data.classes={k} is not allowed; expected 1..{num_classes}")
    perm = np.random.Generator(np.random.PCG64([int(seed), int(num_classes)])).permutation(
        num_classes
    )
    return np.sort(perm[:k])


def _only_classes(split: Split, classes: np.ndarray) -> Split:
    """The rows of ``split`` whose label is in ``classes``, relabelled 0..k-1 in their order,
    copied into memory; ``meta["classes"]`` lists the original ids."""
    labels = np.asarray(split.labels)
    rows = np.flatnonzero(np.isin(labels, classes))
    remap = np.full(split.num_classes, -1, np.int32)
    remap[classes] = np.arange(len(classes), dtype=np.int32)
    meta = {
        **split.meta,
        "count": int(len(rows)),
        "num_classes": int(len(classes)),
        "classes": [int(c) for c in classes],
    }
    return Split(
        images=np.ascontiguousarray(split.images[rows]),
        labels=remap[labels[rows]],
        meta=meta,
        path=split.path,
        indices=rows,
    )


def _through_cache(data_cfg: Any, which: str) -> Any:
    """For a ``gs://`` prepared_dir: ``data_cfg`` with prepared_dir set to the bucket's local
    copy (a memory-mapped split must be local; trainer/mirror.py), the split fetched into it,
    or, when the bucket lacks it, prepared there and uploaded."""
    import ml_collections

    from trainer import mirror

    root = prepared_root(data_cfg)
    problem = files.remote_problem(root)
    if problem:
        raise DataError(f"data.prepared_dir: {problem}")
    local_cfg = ml_collections.ConfigDict(data_cfg.to_dict())
    local_cfg.prepared_dir = str(mirror.cache_dir(root))
    remote, local = split_dir(data_cfg, which), split_dir(local_cfg, which)
    try:
        if (remote / META).exists():
            mirror.fetch(remote, META, local=local)
        else:
            if not (local / META).exists():
                prepare_split(local_cfg, which)
            mirror.upload(local, remote, META)
    except OSError as e:
        raise DataError(f"cannot copy {remote} <-> {local}: {e.strerror or e}") from None
    return local_cfg


def load_split(data_cfg: Any, which: str, *, check_num_classes: bool = True) -> Split:
    """The prepared split ``which`` ("train" | "eval") of ``data_cfg.name``.

    Prepares it on first use (progress bar on stderr). ``data.classes`` = k > 0 keeps only the
    rows of the k classes ``class_subset`` draws, relabelled 0..k-1 (``meta["classes"]`` lists
    the original ids). ``data.train_examples`` / ``data.eval_examples`` > 0 then take a
    deterministic class-balanced subset (see ``stratified_subset``); ``meta["subset"]`` records
    it. Either copies the rows into memory.
    """
    if which not in WHICH:
        raise DataError(f"split {which!r} is unknown; allowed: {', '.join(WHICH)}")
    check_name(data_cfg.name)
    if files.is_remote(prepared_root(data_cfg)):
        data_cfg = _through_cache(data_cfg, which)
    path = split_dir(data_cfg, which)
    root = prepared_root(data_cfg)
    if root.exists() and not root.is_dir():
        raise DataError(
            f"data.prepared_dir={str(root)!r} is a file; expected a directory ('' = "
            f"${ENV_PREPARED_DIR} or {DEFAULT_PREPARED_DIR})"
        )
    if path.is_dir() and not (path / META).exists() and any(path.iterdir()):
        raise DataError(
            f"{path} holds files but no {META} (an unfinished copy?); delete it to have it "
            "prepared again, or copy the whole split"
        )
    if not (path / META).exists():
        try:
            prepare_split(data_cfg, which)
        except OSError as e:  # a read-only or full prepared_dir
            raise DataError(f"cannot prepare {path}: {e.strerror or e}") from None
    split = read_split(path)
    meta = split.meta
    if meta["dataset"] != data_cfg.name or int(meta["image_size"]) != int(data_cfg.image_size):
        raise DataError(
            f"{path / META} is for {meta['dataset']} at {meta['image_size']}, not "
            f"{data_cfg.name} at {data_cfg.image_size}; delete {path} and prepare it again"
        )
    k = int(data_cfg.classes)
    if k > split.num_classes:
        raise DataError(
            f"data.classes={k} but {data_cfg.name} has {split.num_classes} classes; "
            f"allowed: 0 (all) or 1..{split.num_classes}"
        )
    expected = k or split.num_classes
    if check_num_classes and expected != int(data_cfg.num_classes):
        raise DataError(
            f"data.num_classes={data_cfg.num_classes} but {data_cfg.name} has "
            f"{split.num_classes} classes (data.classes={k}); set data.num_classes={expected}"
        )
    if k:
        split = _only_classes(split, class_subset(split.num_classes, k, data_cfg.class_seed))
    n = int(data_cfg.train_examples if which == "train" else data_cfg.eval_examples)
    if 0 < n < split.num_examples:
        idx = stratified_subset(np.asarray(split.labels), n)
        sub_meta = {
            **split.meta,
            "count": int(n),
            "subset": {"count": int(n), "of": split.num_examples, "how": "class-balanced"},
        }
        split = Split(
            images=np.ascontiguousarray(split.images[idx]),
            labels=split.labels[idx],
            meta=sub_meta,
            path=split.path,
            indices=idx if split.indices is None else split.indices[idx],
        )
    return split
