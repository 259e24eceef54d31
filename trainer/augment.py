"""Augmentation and eval preprocessing, on the device.

``augment(rng, images_uint8, data_cfg) -> float32``: crop (``data.crop``), a random horizontal
flip (``data.flip``), then ``normalize`` (trainer/data/normalize.py), per image, jittable and
deterministic for a given key, so a step's batch is a function of (seed, step). Crops:

* ``pad_crop``: pad ``crop_padding`` pixels (reflect), random crop back to size;
* ``random_resized``: Inception-style (area ~ U(0.08, 1), log aspect ~ U(log 3/4, log 4/3),
  bilinear), torchvision's flavour;
* ``distorted_bbox``: tensorflow/tpu's ``_decode_and_random_crop`` (resnet_preprocessing.py:86-106,
  the study's): TF's ``sample_distorted_bounding_box`` with area 0.08-1, aspect 3/4-4/3 (uniform),
  whole-pixel crops covering >= 10% of the image, 10 attempts; when none fits (or the crop is the
  whole image) the centre crop instead; resized with TF1's ``resize_bicubic``;
* ``center``: tensorflow/tpu's ``_decode_and_center_crop`` (resnet_preprocessing.py:109-129): a
  centred square of ``int(s / (s + round(s / 7)) * min(h, w))`` pixels (crop fraction 0.875:
  56 of 64, 27 of 32), resized back to ``s`` with TF1's ``resize_bicubic``;
* ``none``.

``eval_preprocess(images_uint8, data_cfg)``: the eval preprocessing, ``data.eval_crop``: ``none``
(``normalize`` alone) or ``center`` (tensorflow/tpu's eval: the centre crop above, so at 64x64
the eval images are the central 56x56 pixels upsampled to 64; it is not the identity there).

TF1's ``resize_bicubic`` (``align_corners=False``, ``half_pixel_centers=False``, what
``tf.image.resize_bicubic`` does in the tensorflow/tpu code) samples input position ``i * in /
out``, uses the cubic kernel with a = -0.75 on a 1/1024 table, clamps taps to the crop's edges
and does not clip the result; it is written here as two (out x in) matrices per image.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sweeps.base import CROPS, EVAL_CROPS
from trainer.data import DataError
from trainer.data.normalize import normalize

CROP_FRACTION = 0.875  # resnet_preprocessing.py:24


def _per_image(values: jax.Array, images: jax.Array) -> jax.Array:
    """Shard per-image random values like the batch's first axis.

    Under a mesh with explicit axes (``jax.make_mesh``'s default) operands of one op must agree
    on sharding; under automatic axes the batch carries no sharding here and this is a no-op.
    """
    sharding = jax.typeof(images).sharding
    spec = getattr(sharding, "spec", None)
    if not spec or spec[0] is None:
        return values
    return jax.sharding.reshard(values, NamedSharding(sharding.mesh, P(spec[0])))


def _pad_crop(key: jax.Array, images: jax.Array, padding: int, pad_mode: str) -> jax.Array:
    if padding == 0:
        return images
    b, h, w, c = images.shape
    if pad_mode == "reflect" and padding >= min(h, w):
        raise DataError(f"data.crop_padding={padding} must be < the image size {min(h, w)}")
    mode = {"reflect": "reflect", "zero": "constant"}[pad_mode]
    padded = jnp.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode=mode)
    offsets = _per_image(jax.random.randint(key, (b, 2), 0, 2 * padding + 1), images)
    crop = lambda img, o: jax.lax.dynamic_slice(img, (o[0], o[1], 0), (h, w, c))
    return jax.vmap(crop)(padded, offsets)


def _random_resized_crop(
    key: jax.Array,
    images: jax.Array,
    scale: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    attempts: int = 10,
) -> jax.Array:
    """Inception-style crop per image: area fraction ~ U(scale), log aspect ~ U(log ratio); the
    first of ``attempts`` samples that fits, else the whole image; resized back bilinearly."""
    b, h, w, c = images.shape
    u = jax.random.uniform(key, (b, 2 * attempts + 2))  # one draw: one PRNG kernel to compile
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[:, :attempts])
    lo, hi = math.log(ratio[0]), math.log(ratio[1])
    log_r = lo + (hi - lo) * u[:, attempts : 2 * attempts]
    cw = jnp.sqrt(area * jnp.exp(log_r))
    ch = jnp.sqrt(area / jnp.exp(log_r))
    fits = (cw <= w) & (ch <= h)
    first = jnp.argmax(fits, axis=1)[:, None]
    any_fit = fits.any(axis=1)
    cw = jnp.where(any_fit, jnp.take_along_axis(cw, first, axis=1)[:, 0], w)
    ch = jnp.where(any_fit, jnp.take_along_axis(ch, first, axis=1)[:, 0], h)
    y0, x0 = u[:, -2] * (h - ch), u[:, -1] * (w - cw)
    y0, x0, ch, cw = (_per_image(v, images) for v in (y0, x0, ch, cw))
    wy = _interp_matrix(y0, ch, h)
    wx = _interp_matrix(x0, cw, w)
    out = jnp.einsum(
        "bik,bklc,bjl->bijc",
        wy,
        images.astype(jnp.float32),
        wx,
        precision=jax.lax.Precision.HIGHEST,
    )
    return jnp.clip(out, 0.0, 255.0)


def _interp_matrix(start: jax.Array, length: jax.Array, size: int) -> jax.Array:
    """(B, size, size) bilinear weights sampling [start, start + length) onto ``size`` pixels.

    The crop is never larger than the image, so this only enlarges and needs no antialiasing;
    weights past the border are dropped and each row renormalised (as jax.image does). Written
    as explicit matrices because jax.image.scale_and_translate under vmap takes seconds to
    compile, and two small matmuls per image are what it computes anyway.
    """
    centers = start[:, None] + (jnp.arange(size) + 0.5) * (length[:, None] / size)  # (B, out)
    taps = jnp.arange(size) + 0.5  # input pixel centres
    weights = jnp.maximum(0.0, 1.0 - jnp.abs(centers[:, :, None] - taps[None, None, :]))
    return weights / jnp.sum(weights, axis=-1, keepdims=True)


def _distorted_bbox(
    key: jax.Array,
    b: int,
    h: int,
    w: int,
    area: tuple[float, float] = (0.08, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    min_covered: float = 0.1,
    attempts: int = 10,
) -> tuple[jax.Array, ...]:
    """Per image (y0, x0, height, width) of TF's ``sample_distorted_bounding_box`` on a whole
    image box (``GenerateRandomCrop`` then the coverage check, the first of ``attempts`` that
    passes, else the whole image), in float32 whole pixels."""
    k_ar, k_h, k_y, k_x = jax.random.split(key, 4)
    rint = jnp.round  # lrintf: round half to even
    ar = jax.random.uniform(k_ar, (b, attempts)) * (ratio[1] - ratio[0]) + ratio[0]
    min_area, max_area = area[0] * w * h, area[1] * w * h
    height = rint(jnp.sqrt(min_area / ar))
    max_h = rint(jnp.sqrt(max_area / ar))
    alt = jnp.floor((w + 0.5 - 1e-7) / ar)
    alt = jnp.where(rint(alt * ar) > w, alt - 1, alt)
    max_h = jnp.minimum(jnp.where(rint(max_h * ar) > w, alt, max_h), h)
    height = jnp.minimum(height, max_h)
    u = jax.random.uniform(k_h, (b, attempts))
    height = height + jnp.floor(u * (max_h - height + 1))  # Uniform over [0, max_h - height]
    width = rint(height * ar)
    small = width * height < min_area
    height = jnp.where(small, height + 1, height)
    width = rint(height * ar)
    big = width * height > max_area
    height = jnp.where(big, height - 1, height)
    width = rint(height * ar)
    a = width * height
    ok = (a >= min_area) & (a <= max_area) & (width <= w) & (height <= h) & (width > 0)
    ok &= (height > 0) & (a >= 1.0) & (a / (w * h) >= min_covered)
    first = jnp.argmax(ok, axis=1)[:, None]
    found = ok.any(axis=1)
    ch = jnp.where(found, jnp.take_along_axis(height, first, axis=1)[:, 0], h)
    cw = jnp.where(found, jnp.take_along_axis(width, first, axis=1)[:, 0], w)
    y0 = jnp.floor(jax.random.uniform(k_y, (b,)) * (h - ch))  # Uniform over [0, h - ch)
    x0 = jnp.floor(jax.random.uniform(k_x, (b,)) * (w - cw))
    return y0, x0, ch, cw


def center_crop_box(h: int, w: int, size: int) -> tuple[int, int, int]:
    """(y0, x0, side) of tensorflow/tpu's centre crop of an h x w image for output ``size``."""
    padding = round(size * (1 / CROP_FRACTION - 1))
    side = int(np.float32(size / (size + padding)) * np.float32(min(h, w)))
    return (h - side + 1) // 2, (w - side + 1) // 2, side


def _bicubic_matrix(start: jax.Array, length: jax.Array, size_in: int, size_out: int):
    """(B, size_out, size_in) weights of TF1 ``resize_bicubic`` (legacy sampling, a = -0.75,
    1/1024 coefficient table, taps clamped to the crop) of rows [start, start + length)."""
    pos = jnp.arange(size_out, dtype=jnp.float32) * (length[:, None] / size_out)
    base = jnp.floor(pos)
    q = jnp.round((pos - base) * 1024.0) / 1024.0
    a = -0.75
    near = lambda x: ((a + 2) * x - (a + 3)) * x * x + 1  # noqa: E731  |x| <= 1
    far = lambda x: ((a * x - 5 * a) * x + 8 * a) * x - 4 * a  # noqa: E731  1 < |x| < 2
    weights = jnp.stack([far(1 + q), near(q), near(1 - q), far(2 - q)], axis=-1)
    taps = base[..., None] + jnp.arange(-1, 3, dtype=jnp.float32)
    taps = jnp.clip(taps, 0, length[:, None, None] - 1) + start[:, None, None]
    hit = taps[..., None] == jnp.arange(size_in, dtype=jnp.float32)
    return jnp.sum(weights[..., None] * hit, axis=-2)


def _crop_resize(images: jax.Array, y0, x0, ch, cw) -> jax.Array:
    """Each image's window (y0, x0, ch, cw), resized back to the image size with TF1 bicubic."""
    b, h, w, c = images.shape
    y0, x0, ch, cw = (
        _per_image(jnp.broadcast_to(jnp.asarray(v, jnp.float32), (b,)), images)
        for v in (y0, x0, ch, cw)
    )
    return jnp.einsum(
        "bik,bklc,bjl->bijc",
        _bicubic_matrix(y0, ch, h, h),
        images.astype(jnp.float32),
        _bicubic_matrix(x0, cw, w, w),
        precision=jax.lax.Precision.HIGHEST,
    )


def _tpu_random_crop(key: jax.Array, images: jax.Array) -> jax.Array:
    b, h, w, _ = images.shape
    y0, x0, ch, cw = _distorted_bbox(key, b, h, w)
    cy, cx, side = center_crop_box(h, w, h)
    whole = (ch == h) & (cw == w)  # the code's "bad" crop: the centre crop instead
    pick = lambda v, centre: jnp.where(whole, centre, v)  # noqa: E731
    return _crop_resize(images, pick(y0, cy), pick(x0, cx), pick(ch, side), pick(cw, side))


def center_crop(images: jax.Array) -> jax.Array:
    """tensorflow/tpu's centre crop of every image, resized back to its size (float32)."""
    _, h, w, _ = images.shape
    y0, x0, side = center_crop_box(h, w, h)
    return _crop_resize(images, y0, x0, side, side)


def eval_preprocess(images: jax.Array, data_cfg: Any) -> jax.Array:
    """Eval preprocessing of a uint8 (B,H,W,3) batch -> normalised float32 (``data.eval_crop``)."""
    if data_cfg.eval_crop == "none":
        return normalize(images)
    if data_cfg.eval_crop == "center":
        return normalize(center_crop(images))
    raise DataError(f"data.eval_crop={data_cfg.eval_crop!r}; allowed: {', '.join(EVAL_CROPS)}")


def augment(
    rng: jax.Array, images: jax.Array, data_cfg: Any, *, pad_mode: str = "reflect"
) -> jax.Array:
    """Training augmentation of a uint8 (B,H,W,3) batch -> normalised float32, per image.

    ``data_cfg.crop`` (module docstring; ``pad_crop`` pads with reflect or ``pad_mode='zero'``);
    then a random horizontal flip if ``data_cfg.flip``; then ``normalize``. Jittable (the config
    values are read at trace time); deterministic for a given ``rng``.
    """
    k_crop, k_flip = jax.random.split(rng)
    crop = data_cfg.crop
    if crop == "pad_crop":
        if pad_mode not in ("reflect", "zero"):
            raise DataError(f"pad_mode={pad_mode!r}; allowed: reflect, zero")
        x = _pad_crop(k_crop, images, int(data_cfg.crop_padding), pad_mode)
    elif crop == "random_resized":
        x = _random_resized_crop(k_crop, images)
    elif crop == "distorted_bbox":
        x = _tpu_random_crop(k_crop, images)
    elif crop == "center":
        x = center_crop(images)
    elif crop == "none":
        x = images
    else:
        raise DataError(f"data.crop={crop!r}; allowed: {', '.join(CROPS)}")
    if data_cfg.flip:
        flip = _per_image(jax.random.bernoulli(k_flip, 0.5, (images.shape[0],)), images)
        x = jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    return normalize(x)
