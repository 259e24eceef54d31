"""Fashion-MNIST (Zalando, MIT licence): the full set from IDX files, or the embedded subset.

Sources, in order:
1. ``data.source_dir`` when set: a directory with the four IDX ``.gz`` (or uncompressed) files;
2. Debian's ``dataset-fashion-mnist`` package, ``/usr/share/datasets/fashion-mnist/`` (all 70k);
3. the embedded subset committed beside this file (``fashion_mnist_subset.npz``: the first
   1200 train and 200 test images of each class, 28x28 uint8 originals; see
   ``FASHION_MNIST_LICENSE.txt``).
``meta.source`` records which one a prepared split came from.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from trainer.data.errors import DataError
from trainer.data.prepared import one_line

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
EMBEDDED = Path(__file__).with_name("fashion_mnist_subset.npz")
NUM_CLASSES = 10
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "eval": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


def _find(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _has_idx(directory: Path) -> bool:
    return all(_find(directory, s) for pair in FILES.values() for s in pair)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """An IDX file (MNIST's format: big-endian magic, dims, then uint8 data), gzipped or not.

    Parsed with numpy directly: Debian recompressed the files, so tfds' checksums reject them.
    """
    try:
        raw = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is truncated or corrupt ({one_line(e)})") from None
    magic = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else -1
    if magic != 0x800 + ndim:
        raise DataError(f"{path} is not an IDX uint8 file with {ndim} dims (magic {magic:#x})")
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    size = int(np.prod(dims))
    if len(raw) != offset + size:
        raise DataError(
            f"{path} holds {len(raw) - offset} data bytes; its header {tuple(dims)} needs {size}"
        )
    return np.frombuffer(raw, np.uint8, offset=offset).reshape(dims)


class FashionMnistSource:
    name = "fashion_mnist"

    def __init__(self, source_dir: str, which: str):
        self.which = which
        if source_dir:
            directory = Path(source_dir).expanduser()
            if not directory.is_dir():
                raise DataError(
                    f"data.source_dir={source_dir!r} does not exist; give a directory with the "
                    f"Fashion-MNIST IDX files or '' for the default"
                )
            if not _has_idx(directory):
                wanted = ", ".join(s + "[.gz]" for pair in FILES.values() for s in pair)
                raise DataError(f"data.source_dir={source_dir!r} lacks the IDX files {wanted}")
            self.directory: Path | None = directory
        elif _has_idx(DEBIAN_DIR):
            self.directory = DEBIAN_DIR
        else:
            self.directory = None
        if self.directory is None:
            self.source = (
                f"Fashion-MNIST embedded balanced subset ({EMBEDDED.name}: "
                f"1200 train / 200 test images per class of the 60k/10k set)"
            )
            self.source_dir = str(EMBEDDED)
        else:
            self.source = "Fashion-MNIST full set (IDX files)"
            self.source_dir = str(self.directory)
        self.source_split = {"train": "train", "eval": "test"}[which]
        self.num_classes = NUM_CLASSES

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        if self.directory is None:
            key = {"train": "train", "eval": "test"}[self.which]
            try:
                with np.load(EMBEDDED, allow_pickle=False) as z:
                    images, labels = z[f"{key}_images"], z[f"{key}_labels"]
            except (OSError, ValueError, KeyError, EOFError, zlib.error) as e:
                raise DataError(f"{EMBEDDED} is truncated or corrupt ({one_line(e)})") from None
        else:
            img_stem, lab_stem = FILES[self.which]
            images = read_idx(_find(self.directory, img_stem), 3)
            labels = read_idx(_find(self.directory, lab_stem), 1)
        if images.shape[0] != labels.shape[0]:
            raise DataError(
                f"{self.source_dir}: {images.shape[0]} images but {labels.shape[0]} labels "
                f"in the {self.source_split} split"
            )
        if labels.size and labels.max() >= NUM_CLASSES:
            raise DataError(
                f"{self.source_dir}: label {labels.max()} in the {self.source_split} split; "
                f"allowed 0..{NUM_CLASSES - 1}"
            )
        return images, labels.astype(np.int32)

    def count(self) -> int | None:
        return int(self._arrays()[1].shape[0])

    def _arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not hasattr(self, "_loaded"):
            self._loaded = self.load()
        return self._loaded

    def batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        images, labels = self._arrays()
        step = 10000
        for i in range(0, images.shape[0], step):
            yield images[i : i + step], labels[i : i + step]


def make_embedded_subset(directory: Path = DEBIAN_DIR, out: Path = EMBEDDED) -> None:
    """How ``fashion_mnist_subset.npz`` was made: the first 1200 train and 200 test images of
    each class, in the original order, from the full IDX files."""
    arrays = {}
    for which, key, per_class in (("train", "train", 1200), ("eval", "test", 200)):
        images = read_idx(_find(directory, FILES[which][0]), 3)
        labels = read_idx(_find(directory, FILES[which][1]), 1)
        keep = np.sort(
            np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(NUM_CLASSES)])
        )
        arrays[f"{key}_images"] = images[keep]
        arrays[f"{key}_labels"] = labels[keep]
    np.savez_compressed(out, **arrays)
