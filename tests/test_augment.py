"""tensorflow/tpu's preprocessing (resnet_preprocessing.py) on the device: the centre crop, the
distorted-bounding-box random crop and TF1's bicubic resize, against TensorFlow itself."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweeps.base import config_from
from trainer import augment as aug
from trainer.data import normalize


def _cfg(**kw):
    return config_from("embedded", {f"data.{k}": v for k, v in kw.items()}).data


def _images(n=4, size=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_center_crop_box_is_the_codes_at_64_and_32():
    # crop_padding = round(s * (1/0.875 - 1)); side = int(s / (s + padding) * s); offset
    # ((s - side) + 1) // 2 (resnet_preprocessing.py:116-123): not the identity at 64x64.
    assert aug.center_crop_box(64, 64, 64) == (4, 4, 56)
    assert aug.center_crop_box(32, 32, 32) == (3, 3, 27)
    assert aug.center_crop_box(256, 256, 224) == (16, 16, 224)  # the usual 224 of 256


@pytest.mark.parametrize("size, window", [(64, None), (32, None), (64, (5, 7, 23, 41))])
def test_crop_resize_is_tf1_resize_bicubic(size, window):
    tf = pytest.importorskip("tensorflow")
    x = _images(size=size)
    if window is None:
        y0, x0, side = aug.center_crop_box(size, size, size)
        window = (y0, x0, side, side)
        ours = aug.center_crop(jnp.asarray(x))
    else:
        ours = aug._crop_resize(jnp.asarray(x), *window)
    y0, x0, ch, cw = window
    crop = x[:, y0 : y0 + ch, x0 : x0 + cw]
    ref = tf.compat.v1.image.resize_bicubic(crop, [size, size]).numpy()
    np.testing.assert_allclose(np.asarray(ours), ref, atol=2e-3)


def test_distorted_bbox_obeys_the_samplers_constraints():
    n, h = 4096, 64
    y0, x0, ch, cw = (np.asarray(v) for v in aug._distorted_bbox(jax.random.key(0), n, h, h))
    for v in (y0, x0, ch, cw):
        np.testing.assert_array_equal(v, np.round(v))  # whole pixels
    area = ch * cw / (h * h)
    assert area.min() >= 0.1 - 1e-6 and area.max() <= 1.0  # min_object_covered=0.1 bounds it
    assert ((cw / ch >= 0.75 - 1 / ch) & (cw / ch <= 4 / 3 + 1 / ch)).all()
    assert (y0 >= 0).all() and (y0 + ch <= h).all() and (x0 >= 0).all() and (x0 + cw <= h).all()
    assert 0.4 < area.mean() < 0.6  # the sampler draws the height uniformly, not the area
    assert ((ch == h) & (cw == h)).mean() < 0.01


def test_random_crop_is_the_sampled_window_or_the_centre_crop():
    x = jnp.asarray(_images(n=16, size=32, seed=1))
    key = jax.random.key(3)
    y0, x0, ch, cw = (np.asarray(v) for v in aug._distorted_bbox(key, 16, 32, 32))
    out = np.asarray(aug._tpu_random_crop(key, x))
    for i in range(16):
        box = (y0[i], x0[i], ch[i], cw[i])
        if ch[i] == 32 and cw[i] == 32:
            cy, cx, side = aug.center_crop_box(32, 32, 32)
            box = (cy, cx, side, side)
        ref = np.asarray(aug._crop_resize(x[i : i + 1], *box))[0]
        np.testing.assert_allclose(out[i], ref, atol=1e-3)
    # the sampler's whole image (its answer when no attempt fits) becomes the centre crop
    whole = aug._distorted_bbox(key, 8, 32, 32, area=(1.0, 1.0), ratio=(1.0, 1.0))
    assert all((np.asarray(v) == e).all() for v, e in zip(whole, (0, 0, 32, 32), strict=True))


def test_whole_image_samples_take_the_centre_crop(monkeypatch):
    x = jnp.asarray(_images(n=4, size=32, seed=4))
    full = jnp.zeros((4,)), jnp.zeros((4,)), jnp.full((4,), 32.0), jnp.full((4,), 32.0)
    monkeypatch.setattr(aug, "_distorted_bbox", lambda *a, **k: full)
    out = aug._tpu_random_crop(jax.random.key(0), x)
    np.testing.assert_allclose(np.asarray(out), np.asarray(aug.center_crop(x)), atol=1e-4)


def test_eval_preprocess_none_is_normalize_and_center_is_the_crop():
    x = _images(size=32)
    none = aug.eval_preprocess(x, _cfg(eval_crop="none"))
    np.testing.assert_array_equal(np.asarray(none), np.asarray(normalize(x)))
    center = aug.eval_preprocess(x, _cfg(eval_crop="center"))
    np.testing.assert_array_equal(np.asarray(center), np.asarray(normalize(aug.center_crop(x))))


@pytest.mark.parametrize("crop", ["distorted_bbox", "center"])
def test_tpu_crops_are_deterministic_and_center_only_flips(crop):
    x = jnp.asarray(np.repeat(_images(n=1, size=32, seed=2), 16, axis=0))
    fn = jax.jit(lambda k, im: aug.augment(k, im, _cfg(crop=crop, flip=True)))
    a, b = np.asarray(fn(jax.random.key(0), x)), np.asarray(fn(jax.random.key(0), x))
    np.testing.assert_array_equal(a, b)
    distinct = {a[i].tobytes() for i in range(16)}
    if crop == "center":
        assert len(distinct) == 2  # the same crop, flipped or not
        fixed = np.asarray(aug.augment(jax.random.key(0), x, _cfg(crop="center", flip=False)))
        np.testing.assert_array_equal(
            fixed, np.asarray(aug.eval_preprocess(x, _cfg(eval_crop="center")))
        )
    else:
        assert len(distinct) >= 8
