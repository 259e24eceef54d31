"""The prepared-split format: round trip, atomic writes, and one-line errors on bad files."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from trainer.data import DataError, read_split
from trainer.data.prepared import IMAGES, LABELS, META, SplitWriter


def _write(path, n=50, size=8, classes=5, seed=0, chunks=3):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    labels = rng.integers(0, classes, n).astype(np.int32)
    with SplitWriter(path, size) as w:
        for part in np.array_split(np.arange(n), chunks):
            w.append(images[part], labels[part])
        w.finish(
            {
                "dataset": "toy",
                "split": "train",
                "num_classes": classes,
                "source": "test",
                "source_dir": "",
                "source_split": "train",
            }
        )
    return images, labels


def test_round_trip_is_exact_and_memory_mapped(tmp_path):
    path = tmp_path / "toy" / "8" / "train"
    images, labels = _write(path)
    split = read_split(path)
    assert isinstance(split.images, np.memmap)
    np.testing.assert_array_equal(split.images, images)
    np.testing.assert_array_equal(split.labels, labels)
    assert split.labels.dtype == np.int32
    assert split.meta["count"] == 50 and split.meta["image_size"] == 8
    assert split.num_classes == 5 and split.num_examples == 50
    assert len(split.meta["checksum"]) == 64
    # Only the final directory remains: no temporary directory left beside it.
    assert sorted(p.name for p in path.parent.iterdir()) == ["train"]


def test_failed_preparation_leaves_nothing_readable(tmp_path):
    path = tmp_path / "toy" / "8" / "train"
    with pytest.raises(RuntimeError):
        with SplitWriter(path, 8) as w:
            w.append(np.zeros((4, 8, 8, 3), np.uint8), np.zeros(4, np.int32))
            raise RuntimeError("killed")
    assert not path.exists()
    assert list(path.parent.iterdir()) == []


def test_writer_rejects_wrong_image_shape(tmp_path):
    with SplitWriter(tmp_path / "s", 8) as w:
        with pytest.raises(DataError, match=r"uint8 \(N, 8, 8, 3\)"):
            w.append(np.zeros((4, 9, 9, 3), np.uint8), np.zeros(4, np.int32))
        w.abort()


def _one_line(e: pytest.ExceptionInfo) -> str:
    msg = str(e.value)
    assert "\n" not in msg
    return msg


def test_truncated_images_file(tmp_path):
    path = tmp_path / "train"
    _write(path)
    f = path / IMAGES
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(DataError) as e:
        read_split(path)
    assert str(f) in _one_line(e) and "truncated or corrupt" in str(e.value)


def test_wrong_image_shape_on_disk(tmp_path):
    path = tmp_path / "train"
    _write(path, n=20)
    np.save(path / IMAGES, np.zeros((20, 8, 7, 3), np.uint8))
    with pytest.raises(DataError) as e:
        read_split(path)
    assert str(path / IMAGES) in _one_line(e) and "(20, 8, 8, 3)" in str(e.value)


def test_labels_out_of_range(tmp_path):
    path = tmp_path / "train"
    _write(path, n=20, classes=5)
    labels = np.load(path / LABELS)
    labels[3] = 7
    np.save(path / LABELS, labels)
    with pytest.raises(DataError) as e:
        read_split(path)
    assert str(path / LABELS) in _one_line(e) and "allowed [0, 4]" in str(e.value)


def test_count_mismatch_with_meta(tmp_path):
    path = tmp_path / "train"
    _write(path, n=20)
    meta = json.loads((path / META).read_text())
    meta["count"] = 21
    (path / META).write_text(json.dumps(meta))
    with pytest.raises(DataError) as e:
        read_split(path)
    assert "(21, 8, 8, 3)" in _one_line(e) and "meta.json says" in str(e.value)


def test_changed_pixels_fail_the_checksum(tmp_path):
    path = tmp_path / "train"
    images, _ = _write(path, n=20)
    changed = images.copy()
    changed[0, 0, 0, 0] ^= 0xFF  # row 0 is always in the checksum sample
    np.save(path / IMAGES, changed)
    with pytest.raises(DataError, match="checksum") as e:
        read_split(path)
    _one_line(e)


def test_missing_meta(tmp_path):
    path = tmp_path / "train"
    _write(path)
    (path / META).unlink()
    with pytest.raises(DataError, match="meta.json is missing") as e:
        read_split(path)
    _one_line(e)


def test_second_writer_of_the_same_split_keeps_the_first(tmp_path):
    path = tmp_path / "train"
    first = SplitWriter(path, 8)
    second = SplitWriter(path, 8)
    meta = {"dataset": "toy", "split": "train", "num_classes": 2, "source": "t"}
    first.append(np.full((3, 8, 8, 3), 1, np.uint8), np.zeros(3, np.int32))
    second.append(np.full((5, 8, 8, 3), 2, np.uint8), np.ones(5, np.int32))
    first.finish(meta)
    second.finish(meta)
    split = read_split(path)
    assert split.num_examples == 3 and int(split.images[0, 0, 0, 0]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]


def test_temporaries_of_dead_writers_are_removed(tmp_path):
    import socket
    import subprocess

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer runs
    host = socket.gethostname()
    stale = tmp_path / f".train.tmp-{host}-{dead.pid}-abcd1234"
    other_host = tmp_path / f".train.tmp-elsewhere-{dead.pid}-abcd1234"
    alive = tmp_path / f".train.tmp-{host}-{os.getpid()}-abcd1234"
    for d in (stale, other_host, alive):
        d.mkdir()
        (d / IMAGES).write_bytes(b"partial")
    _write(tmp_path / "train")
    assert not stale.exists()
    assert other_host.exists() and alive.exists()
    assert read_split(tmp_path / "train").num_examples == 50
