"""Datasets for training: sources, the prepared-split format and ``load_split``.

``load_split(data_cfg, "train"|"eval") -> Split`` returns a prepared split (preparing it on
first use) from ``data.name``: ``fashion_mnist`` (default; full Debian set or an embedded
subset), ``imagenet64`` (image-net.org's downsampled batch files) or ``tfds:<name>`` (a TFDS
dataset already prepared in ``data.source_dir``). See prepared.py for the on-disk format and
``python -m trainer.data --help`` to prepare splits ahead of time.
"""

from trainer.data.errors import DataError
from trainer.data.load import (
    DATASETS,
    class_subset,
    known_dataset,
    load_split,
    prepare_split,
    prepared_root,
    split_dir,
    stratified_subset,
)
from trainer.data.normalize import IMAGENET_MEAN, IMAGENET_STD, normalize
from trainer.data.prepared import Split, read_split

__all__ = [
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "class_subset",
    "known_dataset",
    "DataError",
    "Split",
    "load_split",
    "normalize",
    "prepare_split",
    "prepared_root",
    "read_split",
    "split_dir",
    "stratified_subset",
]
