"""The input pipeline: deterministic resumable batches, process slices, eval coverage,
device-resident batches and on-device augmentation (single process, CPU)."""

from __future__ import annotations

import itertools
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import Mesh

from sweeps.base import config_from
from trainer.augment import _random_resized_crop, augment
from trainer.data import DataError, Split, normalize
from trainer.pipeline import TrainInput, epoch_permutation, eval_batches, process_rows


def make_split(n=103, size=8, classes=5, seed=0) -> Split:
    """Images whose first pixel encodes the row index (R = i % 256, G = i // 256)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    idx = np.arange(n)
    images[:, 0, 0, 0] = idx % 256
    images[:, 0, 0, 1] = idx // 256
    labels = (idx % classes).astype(np.int32)
    return Split(images=images, labels=labels, meta={"num_classes": classes, "count": n})


def decode(images) -> np.ndarray:
    x = np.asarray(images)
    return x[:, 0, 0, 0].astype(np.int64) + 256 * x[:, 0, 0, 1].astype(np.int64)


def data_cfg(**kw):
    return config_from("embedded", {f"data.{k}": v for k, v in kw.items()}).data


@pytest.fixture(scope="module")
def mesh():
    return jax.make_mesh((len(jax.devices()),), ("data",))


def test_batches_follow_the_epoch_permutation(mesh):
    split = make_split(103)
    ti = TrainInput(split, data_cfg(), 10, seed=3, mesh=mesh)
    assert ti.steps_per_epoch == 10  # remainder of 3 dropped
    for epoch in (0, 1, 4):
        perm = epoch_permutation(3, epoch, 103)
        seen = np.concatenate([ti.batch_indices(epoch * 10 + k) for k in range(10)])
        np.testing.assert_array_equal(seen, perm[:100])
        assert len(set(seen.tolist())) == 100
    assert not np.array_equal(ti.batch_indices(0), ti.batch_indices(10))  # new epoch, new order
    other = TrainInput(split, data_cfg(), 10, seed=4, mesh=mesh)
    assert not np.array_equal(ti.batch_indices(0), other.batch_indices(0))


def test_get_returns_sharded_global_arrays(mesh):
    split = make_split(103)
    ti = TrainInput(split, data_cfg(), 8, seed=0, mesh=mesh)
    for step in (0, 13, 25):
        images, labels = ti.get(step)
        assert images.shape == (8, 8, 8, 3) and images.dtype == jnp.uint8
        assert labels.shape == (8,) and labels.dtype == jnp.int32
        assert images.sharding.spec[0] == "data" and labels.sharding.spec[0] == "data"
        idx = ti.batch_indices(step)
        np.testing.assert_array_equal(decode(images), idx)
        np.testing.assert_array_equal(np.asarray(images), split.images[idx])
        np.testing.assert_array_equal(np.asarray(labels), split.labels[idx])


@pytest.mark.parametrize("prefetch", [0, 3])
def test_resumed_batches_equal_the_uninterrupted_run(mesh, prefetch):
    split = make_split(103)
    cfg = data_cfg(prefetch=prefetch)
    with TrainInput(split, cfg, 16, seed=1, mesh=mesh) as ti:
        full = [(s, decode(x), np.asarray(y)) for s, x, y in itertools.islice(ti.iterate(0), 20)]
    for k in (1, 6, 13):  # 6 = steps_per_epoch: resume exactly at an epoch boundary
        with TrainInput(split, cfg, 16, seed=1, mesh=mesh) as ti:
            tail = [
                (s, decode(x), np.asarray(y)) for s, x, y in itertools.islice(ti.iterate(k), 20 - k)
            ]
        assert [s for s, _, _ in tail] == list(range(k, 20))
        for (s1, x1, y1), (s2, x2, y2) in zip(full[k:], tail, strict=True):
            assert s1 == s2
            np.testing.assert_array_equal(x1, x2)
            np.testing.assert_array_equal(y1, y2)


def test_prefetch_thread_stops_and_errors_reach_the_consumer(mesh):
    split = make_split(50)
    ti = TrainInput(split, data_cfg(prefetch=2), 5, seed=0, mesh=mesh)
    it = ti.iterate(0)
    next(it)
    ti.close()
    assert not any(t.name == "train-input-prefetch" and t.is_alive() for t in threading.enumerate())

    def broken(step):
        raise OSError(f"disk gone at step {step}")

    ti.get = broken
    with pytest.raises(OSError, match="disk gone at step 7"):
        next(ti.iterate(7))


def test_process_slices_tile_the_global_batch():
    batch = 24
    # 4 processes x 2 devices, data axis over all 8 devices, devices listed out of order.
    rows = [(p, slice((2 * p + d) * 3, (2 * p + d + 1) * 3)) for p in range(4) for d in range(2)]
    rows = rows[::-1]
    slices = [process_rows(rows, p, batch) for p in range(4)]
    assert slices == [slice(0, 6), slice(6, 12), slice(12, 18), slice(18, 24)]
    covered = np.concatenate([np.arange(batch)[s] for s in slices])
    np.testing.assert_array_equal(np.sort(covered), np.arange(batch))
    # Mesh (data=2, model=2) over 2 processes: the model axis replicates each data slice.
    rows = [(0, slice(0, 12)), (0, slice(0, 12)), (1, slice(12, 24)), (1, slice(12, 24))]
    assert [process_rows(rows, p, batch) for p in (0, 1)] == [slice(0, 12), slice(12, 24)]
    # Unbounded slices (a data axis of size 1) mean the whole batch.
    assert process_rows([(0, slice(None, None))], 0, batch) == slice(0, 24)
    with pytest.raises(DataError, match="not one contiguous range"):
        process_rows([(0, slice(0, 6)), (1, slice(6, 12)), (0, slice(12, 18))], 0, 18)
    with pytest.raises(DataError, match="holds no device"):
        process_rows(rows, 2, batch)


def test_real_mesh_slices_tile_the_batch(mesh):
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    rows = [(d.process_index, i[0]) for d, i in sharding.devices_indices_map((12, 8)).items()]
    assert process_rows(rows, 0, 12) == slice(0, 12)  # one process holds every row


@pytest.mark.parametrize("crop", ["pad_crop", "none"])
def test_device_resident_batches_equal_host_batches(mesh, crop):
    split = make_split(61)
    host = TrainInput(split, data_cfg(device_resident="no"), 8, seed=2, mesh=mesh)
    dev = TrainInput(split, data_cfg(device_resident="yes"), 8, seed=2, mesh=mesh)
    auto = TrainInput(split, data_cfg(device_resident="auto"), 8, seed=2, mesh=mesh)
    assert dev.device_resident and not host.device_resident
    assert not auto.device_resident  # never on the CPU platform unless asked
    for step in (0, 6, 7, 8, 30):  # 7 steps per epoch: crosses epoch boundaries
        (hx, hy), (dx, dy) = host.get(step), dev.get(step)
        assert dx.sharding.spec[0] == "data" and dx.dtype == jnp.uint8 and dy.dtype == jnp.int32
        np.testing.assert_array_equal(np.asarray(hx), np.asarray(dx))
        np.testing.assert_array_equal(np.asarray(hy), np.asarray(dy))
    steps = [(s, decode(x)) for s, x, _ in itertools.islice(dev.iterate(5), 3)]
    assert [s for s, _ in steps] == [5, 6, 7]
    for s, idx in steps:
        np.testing.assert_array_equal(idx, host.batch_indices(s))


@pytest.mark.parametrize("batch", [1, 10, 103, 500])
def test_eval_batches_cover_every_example_once(mesh, batch):
    split = make_split(103)
    seen, count, sizes = [], 0.0, set()
    for images, labels, mask in eval_batches(split, batch, mesh):
        m = np.asarray(mask)
        assert mask.dtype == jnp.float32 and images.sharding.spec[0] == "data"
        idx = decode(images)[m > 0]
        np.testing.assert_array_equal(np.asarray(labels)[m > 0], split.labels[idx])
        seen.extend(idx.tolist())
        count += float(m.sum())
        sizes.add(images.shape[0])
    assert count == 103
    assert sorted(seen) == list(range(103))
    assert sizes == {batch}


def test_input_errors_are_one_line(mesh):
    split = make_split(20)
    with pytest.raises(DataError, match=r"train.batch_size=21 must be in \[1, 20\]"):
        TrainInput(split, data_cfg(), 21, seed=0, mesh=mesh)
    other = Mesh(np.array(jax.devices()), ("batch",))
    with pytest.raises(DataError, match="needs a 'data' axis"):
        TrainInput(split, data_cfg(), 4, seed=0, mesh=other)
    with pytest.raises(DataError, match="needs a 'data' axis"):
        next(eval_batches(split, 4, other))


# ----------------------------------------------------------------------------- augmentation


def _batch(n=16, size=16, seed=0, same=False):
    rng = np.random.default_rng(seed)
    if same:
        one = rng.integers(0, 256, (1, size, size, 3), dtype=np.uint8)
        return np.repeat(one, n, axis=0)
    return rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_normalize_is_imagenet_mean_std():
    x = np.array([[[[0, 128, 255]]]], np.uint8)
    y = np.asarray(normalize(x))
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(y[0, 0, 0], (np.array([0, 128, 255]) / 255 - mean) / std, rtol=1e-6)
    assert y.dtype == np.float32


@pytest.mark.parametrize("crop", ["pad_crop", "random_resized", "none"])
def test_augment_is_deterministic_and_varies(crop):
    cfg = data_cfg(crop=crop, flip=True)
    fn = jax.jit(lambda k, x: augment(k, x, cfg))
    x = _batch(same=True)  # 16 copies of one image: differences come from augmentation
    a = np.asarray(fn(jax.random.key(0), x))
    b = np.asarray(fn(jax.random.key(0), x))
    c = np.asarray(fn(jax.random.key(1), x))
    assert a.dtype == np.float32 and a.shape == x.shape
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    distinct = {a[i].tobytes() for i in range(len(a))}
    assert len(distinct) >= (2 if crop == "none" else 6)  # flips only, or crops and flips


def test_no_augmentation_is_exactly_normalize():
    x = _batch()
    y = augment(jax.random.key(0), x, data_cfg(crop="none", flip=False))
    np.testing.assert_array_equal(np.asarray(y), np.asarray(normalize(x)))


def test_pad_crop_outputs_are_shifted_windows():
    x = _batch(n=8, seed=1)
    cfg = data_cfg(crop="pad_crop", crop_padding=2, flip=False)
    y = np.asarray(augment(jax.random.key(3), x, cfg))
    padded = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    offsets = set()
    for i in range(8):
        found = [
            (dy, dx)
            for dy in range(5)
            for dx in range(5)
            if np.array_equal(y[i], np.asarray(normalize(padded[i, dy : dy + 16, dx : dx + 16])))
        ]
        assert found, f"image {i} is not a window of its padded input"
        offsets.add(found[0])
    assert len(offsets) > 1


def test_flip_only_mirrors():
    x = _batch(n=16, seed=2)
    y = np.asarray(augment(jax.random.key(5), x, data_cfg(crop="none", flip=True)))
    plain, mirrored = np.asarray(normalize(x)), np.asarray(normalize(x[:, :, ::-1]))
    flipped = [np.array_equal(y[i], mirrored[i]) for i in range(16)]
    assert all(f or np.array_equal(y[i], plain[i]) for i, f in enumerate(flipped))
    assert 0 < sum(flipped) < 16


def test_random_resized_crop_full_area_is_identity_and_crops_zoom():
    x = _batch(n=4, seed=3).astype(np.float32)
    rrc = jax.jit(_random_resized_crop, static_argnums=(2, 3))
    full = rrc(jax.random.key(0), x, (1.0, 1.0), (1.0, 1.0))
    np.testing.assert_allclose(np.asarray(full), x, atol=1e-3)
    # A quarter-area square crop at 2x zoom: neighbouring output pixels repeat input pixels,
    # so the output is smoother than the input.
    zoom = np.asarray(rrc(jax.random.key(0), x, (0.25, 0.25), (1.0, 1.0)))
    assert np.abs(np.diff(zoom, axis=2)).mean() < 0.8 * np.abs(np.diff(x, axis=2)).mean()


def test_augment_under_automatic_mesh_axes():
    auto = Mesh(np.array(jax.devices()), ("data",))
    sharding = jax.sharding.NamedSharding(auto, jax.sharding.PartitionSpec("data"))
    cfg = data_cfg(crop="pad_crop")
    fn = jax.jit(lambda k, x: augment(k, x, cfg))
    y = fn(jax.random.key(0), jax.device_put(_batch(), sharding))
    ref = fn(jax.random.key(0), _batch())
    np.testing.assert_array_equal(np.asarray(y), np.asarray(ref))


def test_resident_gather_fuses_into_a_step(mesh):
    split = make_split(40)
    ti = TrainInput(split, data_cfg(device_resident="yes"), 8, seed=0, mesh=mesh)

    @jax.jit
    def step(images_all, labels_all, idx):
        images, labels = ti.gather(images_all, labels_all, idx)
        return images[:, 0, 0, 0].astype(jnp.int32) + 256 * images[:, 0, 0, 1], labels

    got, labels = step(*ti.device_split, ti.device_indices(3))
    np.testing.assert_array_equal(np.asarray(got), ti.batch_indices(3))
    np.testing.assert_array_equal(np.asarray(labels), split.labels[ti.batch_indices(3)])
