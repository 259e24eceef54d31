"""Sources preparing into the prepared format: Fashion-MNIST, ImageNet 64x64 batch files,
``load_split`` (subsets, locations, errors) and ``python -m trainer.data``."""

from __future__ import annotations

import gzip
import pickle
import types

import numpy as np
import pytest

from sweeps.base import ConfigError, config_from
from trainer.data import (
    DataError,
    fashion_mnist,
    load_split,
    prepared_root,
    split_dir,
    stratified_subset,
)
from trainer.data import __main__ as cli


def _cfg(tmp_path, **data):
    overrides = {"data.prepared_dir": str(tmp_path / "prepared")}
    overrides.update({f"data.{k}": v for k, v in data.items()})
    return config_from("embedded", overrides).data


def _idx_bytes(array: np.ndarray) -> bytes:
    header = (0x800 + array.ndim).to_bytes(4, "big")
    header += b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_idx_dir(d, n_train=30, n_test=10, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for stem, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n).astype(np.uint8)
        (d / f"{stem}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
        (d / f"{stem}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))
        out[stem] = (images, labels)
    return out


# ----------------------------------------------------------------------------- Fashion-MNIST


def test_fashion_mnist_idx_files_prepare_pixel_exact(tmp_path):
    raw = _write_idx_dir(tmp_path / "fm")
    cfg = _cfg(tmp_path, source_dir=str(tmp_path / "fm"), image_size=28)
    for which, stem in (("train", "train"), ("eval", "t10k")):
        split = load_split(cfg, which)
        images, labels = raw[stem]
        assert split.images.shape == (len(labels), 28, 28, 3)
        for c in range(3):
            np.testing.assert_array_equal(split.images[..., c], images)
        np.testing.assert_array_equal(split.labels, labels.astype(np.int32))
        assert "full set" in split.meta["source"]
        assert split.meta["source_dir"] == str(tmp_path / "fm")


def test_fashion_mnist_resize_keeps_content(tmp_path):
    raw = _write_idx_dir(tmp_path / "fm")
    split = load_split(_cfg(tmp_path, source_dir=str(tmp_path / "fm"), image_size=32), "train")
    assert split.images.shape == (30, 32, 32, 3) and split.images.dtype == np.uint8
    original = raw["train"][0].astype(np.float64)
    resized = np.asarray(split.images[..., 0], np.float64)
    np.testing.assert_allclose(resized.mean(axis=(1, 2)), original.mean(axis=(1, 2)), atol=3.0)
    # Grey is repeated into all three channels.
    assert np.all(split.images[..., 0] == split.images[..., 2])


def test_fashion_mnist_embedded_subset_when_no_full_set(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "absent")
    cfg = _cfg(tmp_path, train_examples=200)
    train = load_split(cfg, "train")
    assert "embedded" in train.meta["source"]
    assert train.meta["subset"] == {"count": 200, "of": 12000, "how": "class-balanced"}
    assert train.images.shape == (200, 32, 32, 3)
    np.testing.assert_array_equal(np.bincount(train.labels, minlength=10), [20] * 10)
    full = load_split(_cfg(tmp_path), "train")
    np.testing.assert_array_equal(full.images[train.indices], train.images)
    evals = load_split(cfg, "eval")
    assert evals.num_examples == 2000 and evals.meta["source_split"] == "test"
    np.testing.assert_array_equal(np.bincount(evals.labels), [200] * 10)


def test_truncated_idx_file(tmp_path):
    _write_idx_dir(tmp_path / "fm")
    f = tmp_path / "fm" / "train-images-idx3-ubyte.gz"
    f.write_bytes(f.read_bytes()[:-50])
    with pytest.raises(DataError) as e:
        load_split(_cfg(tmp_path, source_dir=str(tmp_path / "fm")), "train")
    assert str(f) in str(e.value) and "\n" not in str(e.value)
    assert not split_dir(_cfg(tmp_path), "train").exists()


def test_missing_source_dir(tmp_path):
    for name in ("fashion_mnist", "imagenet64"):
        cfg = _cfg(tmp_path, name=name, source_dir=str(tmp_path / "nowhere"), num_classes=1000)
        with pytest.raises(DataError, match="does not exist") as e:
            load_split(cfg, "train", check_num_classes=False)
        assert "data.source_dir=" in str(e.value) and "\n" not in str(e.value)


def test_unknown_dataset_name(tmp_path):
    cfg = types.SimpleNamespace(**dict(_cfg(tmp_path)))
    cfg.name = "cifar10"
    with pytest.raises(DataError) as e:
        load_split(cfg, "train")
    assert str(e.value) == (
        "dataset 'cifar10' is unknown; allowed: fashion_mnist, imagenet64, tfds:<name>"
    )


def test_num_classes_must_match_the_dataset(tmp_path):
    _write_idx_dir(tmp_path / "fm")
    cfg = _cfg(tmp_path, source_dir=str(tmp_path / "fm"), num_classes=1000)
    with pytest.raises(DataError, match="set data.num_classes=10"):
        load_split(cfg, "eval")


def test_prepared_dir_resolution(tmp_path, monkeypatch):
    cfg = config_from("embedded").data
    monkeypatch.delenv("PSWEEPS_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    assert str(prepared_root(cfg)) == "data"
    monkeypatch.setenv("PSWEEPS_DATA_DIR", str(tmp_path / "env"))
    assert prepared_root(cfg) == tmp_path / "env"
    cfg.prepared_dir = str(tmp_path / "cfg")
    assert prepared_root(cfg) == tmp_path / "cfg"
    assert split_dir(cfg, "eval") == tmp_path / "cfg" / "fashion_mnist" / "32" / "eval"


def test_stratified_subset_is_balanced_and_deterministic():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 3)
    np.random.default_rng(0).shuffle(labels)
    idx = stratified_subset(labels, 21)
    assert np.all(np.diff(idx) > 0)
    np.testing.assert_array_equal(np.bincount(labels[idx]), [9, 9, 3])
    np.testing.assert_array_equal(idx, stratified_subset(labels, 21))
    # Within a class the earliest rows are taken.
    for c in range(3):
        assert set(np.flatnonzero(labels == c)[: (labels[idx] == c).sum()]) <= set(idx)


# ----------------------------------------------------------------------------- ImageNet 64x64


def _imagenet_fixture(d, fmt, per_file=3, seed=0, protocol=pickle.DEFAULT_PROTOCOL):
    """Tiny train_data_batch_1..10 + val_data in the official layout (pickle or npz)."""
    rng = np.random.default_rng(seed)
    files = {}
    d.mkdir(parents=True, exist_ok=True)
    for stem in [f"train_data_batch_{i}" for i in range(1, 11)] + ["val_data"]:
        data = rng.integers(0, 256, (per_file, 64 * 64 * 3), dtype=np.uint8)
        labels = rng.integers(1, 1001, per_file)
        if fmt == "npz":
            np.savez(d / f"{stem}.npz", data=data, labels=labels)
        else:
            with open(d / stem, "wb") as f:
                d_ = {"data": data, "labels": labels.tolist(), "mean": data.mean(0)}
                pickle.dump(d_, f, protocol=protocol)
        files[stem] = (data, labels)
    return files


@pytest.mark.parametrize("fmt,protocol", [("pickle", 2), ("pickle", 4), ("pickle", 5), ("npz", 0)])
def test_imagenet64_batches_prepare_pixel_exact(tmp_path, fmt, protocol):
    files = _imagenet_fixture(tmp_path / "in64" / "Imagenet64_train", fmt, protocol=protocol)
    cfg = _cfg(tmp_path, name="imagenet64", source_dir=str(tmp_path / "in64"), image_size=64)
    cfg.num_classes = 1000
    train = load_split(cfg, "train")
    stems = [f"train_data_batch_{i}" for i in range(1, 11)]
    data = np.concatenate([files[s][0] for s in stems])
    labels = np.concatenate([files[s][1] for s in stems])
    assert train.images.shape == (30, 64, 64, 3)
    # Channel-major rows: R plane, G plane, B plane, each 64x64 row-major.
    for i in (0, 7, 29):
        for c in range(3):
            np.testing.assert_array_equal(
                train.images[i, :, :, c], data[i, c * 4096 : (c + 1) * 4096].reshape(64, 64)
            )
    np.testing.assert_array_equal(train.labels, labels - 1)
    val = load_split(cfg, "eval")
    np.testing.assert_array_equal(val.labels, files["val_data"][1] - 1)
    assert val.meta["source_split"] == "val" and val.num_classes == 1000


def test_imagenet64_resized_to_32(tmp_path):
    files = _imagenet_fixture(tmp_path / "in64", "npz", per_file=2)
    cfg = _cfg(tmp_path, name="imagenet64", source_dir=str(tmp_path / "in64"), num_classes=1000)
    val = load_split(cfg, "eval")
    assert val.images.shape == (2, 32, 32, 3)
    src = files["val_data"][0].reshape(2, 3, 64, 64).mean(axis=(2, 3))
    np.testing.assert_allclose(val.images.mean(axis=(1, 2)), src, atol=2.0)


def test_imagenet64_truncated_batch_file(tmp_path):
    _imagenet_fixture(tmp_path / "in64", "pickle")
    f = tmp_path / "in64" / "train_data_batch_4"
    f.write_bytes(f.read_bytes()[:1000])
    cfg = _cfg(tmp_path, name="imagenet64", source_dir=str(tmp_path / "in64"), num_classes=1000)
    with pytest.raises(DataError) as e:
        load_split(cfg, "train")
    assert str(f) in str(e.value) and "truncated or corrupt" in str(e.value)
    assert "\n" not in str(e.value)
    assert not split_dir(cfg, "train").exists()
    assert list(split_dir(cfg, "train").parent.iterdir()) == []  # temporary dir removed too


def test_imagenet64_wrong_shape_and_labels(tmp_path):
    d = tmp_path / "in64"
    _imagenet_fixture(d, "npz")
    cfg = _cfg(tmp_path, name="imagenet64", source_dir=str(d), num_classes=1000)
    np.savez(d / "val_data.npz", data=np.zeros((2, 3072), np.uint8), labels=np.ones(2))
    with pytest.raises(DataError, match=r"expected uint8 \(N, 12288\)"):
        load_split(cfg, "eval")
    np.savez(d / "val_data.npz", data=np.zeros((2, 12288), np.uint8), labels=np.array([0, 3]))
    with pytest.raises(DataError, match="expected 1-based 1..1000"):
        load_split(cfg, "eval")


def test_imagenet64_missing_files(tmp_path):
    _imagenet_fixture(tmp_path / "in64", "npz")
    (tmp_path / "in64" / "train_data_batch_7.npz").unlink()
    cfg = _cfg(tmp_path, name="imagenet64", source_dir=str(tmp_path / "in64"), num_classes=1000)
    with pytest.raises(DataError, match="lacks train_data_batch_7"):
        load_split(cfg, "train")


def test_pickle_with_code_is_refused(tmp_path):
    d = tmp_path / "in64"
    _imagenet_fixture(d, "pickle")

    class Evil:
        def __reduce__(self):
            return (print, ("ran",))

    with open(d / "val_data", "wb") as f:
        pickle.dump({"data": Evil(), "labels": [1]}, f)
    cfg = _cfg(tmp_path, name="imagenet64", source_dir=str(d), num_classes=1000)
    with pytest.raises(
        DataError, match=r"refusing a pickle that would run code \(builtins.print\)"
    ):
        load_split(cfg, "eval")


# ----------------------------------------------------------------------------- CLI


def test_cli_prepares_both_splits(tmp_path, capsys):
    _imagenet_fixture(tmp_path / "in64", "npz")
    prepared = tmp_path / "out"
    rc = cli.main(
        ["imagenet64", "--source-dir", str(tmp_path / "in64"), "--prepared-dir", str(prepared)]
        + ["--eval-examples", "2"]  # the paper preset's 64x64 by default
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "train: 30 images, images (30, 64, 64, 3) uint8" in out
    assert "eval: 2 images (class-balanced subset of 3)" in out
    assert "1000 classes" in out and str(prepared / "imagenet64" / "64" / "train") in out
    assert (prepared / "imagenet64" / "64" / "eval" / "meta.json").exists()
    # --force prepares again and swaps the new split in, leaving no stray directory.
    args = ["imagenet64", "--source-dir", str(tmp_path / "in64"), "--prepared-dir", str(prepared)]
    assert cli.main(args + ["--splits", "eval", "--force"]) == 0
    assert "eval: 3 images" in capsys.readouterr().out
    assert sorted(p.name for p in (prepared / "imagenet64" / "64").iterdir()) == ["eval", "train"]
    assert cli.main(args + ["--splits", "eval", "--preset", "embedded"]) == 0
    assert "images (3, 32, 32, 3)" in capsys.readouterr().out


def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    rc = cli.main(["imagenet64", "--prepared-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: imagenet64 needs data.source_dir")
    assert err.count("\n") == 1
    assert cli.main(["mnist", "--prepared-dir", str(tmp_path)]) == 2
    assert "fashion_mnist, imagenet64, tfds:<name>" in capsys.readouterr().err


def test_training_data_path_runs_without_tensorflow(tmp_path):
    """fashion_mnist preparation, loading and the pipeline never import TensorFlow."""
    import subprocess
    import sys
    from pathlib import Path

    code = f"""
import sys
sys.modules["tensorflow"] = None  # any `import tensorflow` now fails
import jax
from sweeps.base import ConfigError, config_from
from trainer.data import load_split
from trainer.augment import augment
from trainer.pipeline import TrainInput, eval_batches
cfg = config_from("embedded", {{"data.prepared_dir": {str(tmp_path)!r},
                                "data.train_examples": 64, "data.eval_examples": 32}}).data
train, ev = load_split(cfg, "train"), load_split(cfg, "eval")
mesh = jax.make_mesh((1,), ("data",))
ti = TrainInput(train, cfg, 16, 0, mesh)
_, x, y = next(ti.iterate(0))
augment(jax.random.key(0), x, cfg).block_until_ready()
n = sum(float(m.sum()) for _, _, m in eval_batches(ev, 10, mesh))
assert n == 32, n
assert not any(m.startswith(("tensorflow", "tensorflow_datasets")) and sys.modules[m]
               for m in list(sys.modules)), "TensorFlow was imported"
print("OK")
"""
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=300
    )
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stderr[-2000:]


def test_class_subset_is_seeded_sorted_and_nested():
    from trainer.data import class_subset

    a = class_subset(1000, 50, seed=0)
    assert len(a) == 50 and list(a) == sorted(set(a.tolist())) and a.max() < 1000
    np.testing.assert_array_equal(a, class_subset(1000, 50, seed=0))
    assert not np.array_equal(a, class_subset(1000, 50, seed=1))
    assert set(a.tolist()) <= set(class_subset(1000, 900, seed=0).tolist())
    np.testing.assert_array_equal(class_subset(10, 10, seed=3), np.arange(10))
    with pytest.raises(DataError, match=r"data.classes=11 is not allowed; expected 1..10"):
        class_subset(10, 11, seed=0)


def test_random_classes_are_relabelled_and_recorded(tmp_path, monkeypatch):
    from trainer.data import class_subset

    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "absent")
    full = {w: load_split(_cfg(tmp_path), w) for w in ("train", "eval")}
    cfg = _cfg(tmp_path, classes=3, num_classes=3, class_seed=5, train_examples=300)
    ids = class_subset(10, 3, seed=5)
    for which in ("train", "eval"):
        split = load_split(cfg, which)
        assert split.meta["classes"] == ids.tolist() and split.num_classes == 3
        assert set(np.unique(split.labels).tolist()) == {0, 1, 2}
        # each row is a row of the full split, its label the rank of its original class
        src = full[which]
        np.testing.assert_array_equal(src.images[split.indices], split.images)
        np.testing.assert_array_equal(ids[split.labels], src.labels[split.indices])
    train = load_split(cfg, "train")
    assert train.num_examples == 300 and train.meta["subset"]["of"] == 3600
    with pytest.raises(DataError, match="data.classes=11 but fashion_mnist has 10 classes"):
        load_split(types.SimpleNamespace(**{**dict(cfg), "classes": 11, "num_classes": 11}), "eval")


def test_classes_and_num_classes_must_agree():
    with pytest.raises(ConfigError, match="expected data.num_classes=5") as e:
        config_from("embedded", {"data.classes": 5})
    assert "\n" not in str(e.value)
