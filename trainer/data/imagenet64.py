"""The official downsampled ImageNet 64x64 (image-net.org, Chrabaszcz et al. 2017).

``data.source_dir`` (or a folder directly inside it, e.g. ``Imagenet64_train/``) holds
``train_data_batch_1`` .. ``train_data_batch_10`` and ``val_data``, each a pickled dict (or the
same name with ``.npz``) with ``data``: (N, 12288) uint8, channel-major (the R plane, then G,
then B, each 64x64 row-major), and ``labels``: 1-based class ids (1..1000). Files are read one at
a time and streamed to the prepared split, so the 15.7 GB train set never sits in RAM.
"""

from __future__ import annotations

import pickle
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trainer.data.errors import DataError
from trainer.data.prepared import one_line

SIDE = 64
NUM_CLASSES = 1000
TRAIN_EXAMPLES, VAL_EXAMPLES = 1281167, 50000  # the official split sizes
FILES = {
    "train": tuple(f"train_data_batch_{i}" for i in range(1, 11)),
    "eval": ("val_data",),
}
SUFFIXES = ("", ".npz", ".pkl", ".pickle")
ROWS_PER_WRITE = 8192  # channel-major -> HWC conversion in slices: bounded extra memory


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain dicts, lists and numpy arrays only (no arbitrary code from a file)."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),  # protocol 5
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # protocol 2 byte strings
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("builtins", "list"),
        ("builtins", "dict"),
        ("__builtin__", "list"),
        ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise _Refused(
                f"refusing a pickle that would run code ({module}.{name}); the official "
                "batch files hold only a dict of numpy arrays"
            )
        return super().find_class(module, name)


class _Refused(pickle.UnpicklingError):
    """A pickle naming something other than plain containers and numpy arrays."""


def read_batch_file(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data (N, 12288) uint8, labels (N,) 0-based int32) of one batch file, checked."""
    try:
        if zipfile.is_zipfile(path):
            with np.load(path, allow_pickle=False) as z:
                data, labels = z["data"], z["labels"]
        else:
            with open(path, "rb") as f:
                d = _NumpyOnlyUnpickler(f, encoding="latin1").load()
            if not isinstance(d, dict):
                raise ValueError(f"holds a {type(d).__name__}, not a dict")
            data, labels = d["data"], d["labels"]
    except KeyError as e:
        raise DataError(f"{path} lacks the key {e}; expected 'data' and 'labels'") from None
    except _Refused as e:
        raise DataError(f"{path}: {e}") from None
    except (
        OSError,
        EOFError,
        ValueError,
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        zlib.error,
    ) as e:
        raise DataError(f"{path} is truncated or corrupt ({one_line(e)})") from None
    data = np.asarray(data)
    labels = np.asarray(labels)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * SIDE * SIDE:
        raise DataError(
            f"{path}: 'data' is {data.dtype} {data.shape}; expected uint8 (N, {3 * SIDE * SIDE})"
        )
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {labels.shape[0]} labels for {data.shape[0]} images")
    if labels.size and (labels.min() < 1 or labels.max() > NUM_CLASSES):
        raise DataError(
            f"{path}: labels in [{labels.min()}, {labels.max()}]; expected 1-based 1..{NUM_CLASSES}"
        )
    return data, (labels - 1).astype(np.int32)


def to_hwc(rows: np.ndarray) -> np.ndarray:
    """(n, 12288) channel-major rows -> (n, 64, 64, 3)."""
    return np.ascontiguousarray(rows.reshape(-1, 3, SIDE, SIDE).transpose(0, 2, 3, 1))


class Imagenet64Source:
    name = "imagenet64"

    def __init__(self, source_dir: str, which: str):
        if not source_dir:
            raise DataError(
                "imagenet64 needs data.source_dir: the directory with train_data_batch_1..10 and "
                "val_data from image-net.org's downsampled ImageNet 64x64"
            )
        root = Path(source_dir).expanduser()
        if not root.is_dir():
            raise DataError(
                f"data.source_dir={source_dir!r} does not exist; expected the directory with "
                f"train_data_batch_1..10 and val_data of downsampled ImageNet 64x64"
            )
        dirs = [root] + sorted(p for p in root.iterdir() if p.is_dir())
        self.paths: list[Path] = []
        missing = []
        for stem in FILES[which]:
            found = [d / (stem + s) for d in dirs for s in SUFFIXES if (d / (stem + s)).is_file()]
            if found:
                self.paths.append(found[0])
            else:
                missing.append(stem)
        if missing:
            raise DataError(
                f"data.source_dir={source_dir!r} lacks {', '.join(missing)} (pickle or .npz) of "
                f"downsampled ImageNet 64x64"
            )
        self.source = "ImageNet 64x64, official downsampled batch files (image-net.org)"
        self.source_dir = str(root)
        self.source_split = "train" if which == "train" else "val"
        self.num_classes = NUM_CLASSES

    def count(self) -> int | None:
        """About how many images the files hold (from their sizes), for the progress bar."""
        return sum(p.stat().st_size for p in self.paths) // (3 * SIDE * SIDE + 8) or None

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for path in self.paths:
            data, labels = read_batch_file(path)
            for i in range(0, data.shape[0], ROWS_PER_WRITE):
                yield to_hwc(data[i : i + ROWS_PER_WRITE]), labels[i : i + ROWS_PER_WRITE]
            del data
