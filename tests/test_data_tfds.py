"""``tfds:<name>``: a real (tiny) TFDS dataset prepared in a temporary data_dir is read back."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow_datasets as tfds

from sweeps.base import config_from
from trainer.data import DataError, load_split


def _images(seed, n, shape):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), rng.integers(0, 4, n)


class PsweepsTinyFixed(tfds.core.GeneratorBasedBuilder):
    """20x20 RGB images, 4 classes, train + test."""

    VERSION = tfds.core.Version("1.0.0")
    pkg_dir_path = Path(__file__).parent  # the test module is not in a package

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(20, 20, 3)),
                    "label": tfds.features.ClassLabel(num_classes=4),
                }
            ),
            supervised_keys=("image", "label"),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(0, 12), "test": self._generate_examples(1, 5)}

    def _generate_examples(self, seed, n):
        images, labels = _images(seed, n, (20, 20, 3))
        for i in range(n):
            yield i, {"image": images[i], "label": int(labels[i])}


class PsweepsTinyMixed(tfds.core.GeneratorBasedBuilder):
    """Grey images of mixed sizes, no supervised_keys, train + validation."""

    VERSION = tfds.core.Version("1.0.0")
    pkg_dir_path = Path(__file__).parent  # the test module is not in a package

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "picture": tfds.features.Image(shape=(None, None, 1)),
                    "kind": tfds.features.ClassLabel(names=["a", "b", "c", "d"]),
                }
            ),
        )

    def _split_generators(self, dl_manager):
        return {"train": self._generate_examples(2, 6), "validation": self._generate_examples(3, 3)}

    def _generate_examples(self, seed, n):
        rng = np.random.default_rng(seed)
        for i in range(n):
            h, w = rng.integers(10, 40, 2)
            value = int(rng.integers(0, 256))
            yield i, {"picture": np.full((h, w, 1), value, np.uint8), "kind": i % 4}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tfds")
    for cls in (PsweepsTinyFixed, PsweepsTinyMixed):
        cls(data_dir=str(d)).download_and_prepare()
    return d


def _cfg(tmp_path, data_dir, name, size):
    return config_from(
        "embedded",
        {
            "data.name": f"tfds:{name}",
            "data.source_dir": str(data_dir),
            "data.prepared_dir": str(tmp_path / "prepared"),
            "data.image_size": size,
            "data.num_classes": 4,
        },
    ).data


def test_tfds_fixed_size_is_pixel_exact(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir, "psweeps_tiny_fixed", 20)
    for which, seed, n in (("train", 0, 12), ("eval", 1, 5)):
        split = load_split(cfg, which)
        images, labels = _images(seed, n, (20, 20, 3))
        # TFDS stores examples in the order of its key hashes: compare as (image, label) pairs.
        got = sorted(
            (img.tobytes(), int(lab)) for img, lab in zip(split.images, split.labels, strict=True)
        )
        want = sorted((img.tobytes(), int(lab)) for img, lab in zip(images, labels, strict=True))
        assert split.images.shape == (n, 20, 20, 3)
        assert got == want
        assert split.meta["source"].startswith("TFDS psweeps_tiny_fixed")
        assert split.meta["source_split"] == ("train" if which == "train" else "test")
    assert (tmp_path / "prepared" / "tfds-psweeps_tiny_fixed" / "20" / "eval").is_dir()


def test_tfds_mixed_sizes_grey_are_resized(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir, "psweeps_tiny_mixed", 16)
    split = load_split(cfg, "eval")
    assert split.meta["source_split"] == "validation"
    assert split.images.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(np.sort(split.labels), [0, 1, 2])
    for img in split.images:  # constant images stay constant in every channel
        assert len(np.unique(img)) == 1


def test_tfds_not_prepared(tmp_path, data_dir):
    cfg = _cfg(tmp_path, data_dir, "psweeps_tiny_fixed", 20)
    cfg.source_dir = str(tmp_path)  # exists, but holds no prepared dataset
    with pytest.raises(DataError, match="is not prepared in") as e:
        load_split(cfg, "train")
    assert "\n" not in str(e.value)


def test_tfds_without_tensorflow(tmp_path, data_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # makes `import tensorflow` fail
    cfg = _cfg(tmp_path, data_dir, "psweeps_tiny_fixed", 20)
    with pytest.raises(DataError, match=r"need TensorFlow .*pip install -e '\.\[tf\]'"):
        load_split(cfg, "train")
