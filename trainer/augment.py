"""Training augmentation, on the device: ``augment(rng, images_uint8, data_cfg) -> float32``.

Crop (``data.crop``: ``pad_crop``, ``random_resized`` Inception-style, or ``none``), a random
horizontal flip (``data.flip``), then ``normalize`` (trainer/data/normalize.py), per image,
jittable and deterministic for a given key, so a step's batch is a function of (seed, step).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from trainer.data import DataError
from trainer.data.normalize import normalize


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


def augment(
    rng: jax.Array, images: jax.Array, data_cfg: Any, *, pad_mode: str = "reflect"
) -> jax.Array:
    """Training augmentation of a uint8 (B,H,W,3) batch -> normalised float32, per image.

    ``data_cfg.crop``: ``pad_crop`` (pad ``crop_padding`` pixels, reflect or ``pad_mode='zero'``,
    then a random crop back to size), ``random_resized`` (Inception-style) or ``none``; then a
    random horizontal flip if ``data_cfg.flip``; then ``normalize``. Jittable (the config values
    are read at trace time); deterministic for a given ``rng``.
    """
    k_crop, k_flip = jax.random.split(rng)
    crop = data_cfg.crop
    if crop == "pad_crop":
        if pad_mode not in ("reflect", "zero"):
            raise DataError(f"pad_mode={pad_mode!r}; allowed: reflect, zero")
        x = _pad_crop(k_crop, images, int(data_cfg.crop_padding), pad_mode)
    elif crop == "random_resized":
        x = _random_resized_crop(k_crop, images)
    elif crop == "none":
        x = images
    else:
        raise DataError(f"data.crop={crop!r}; allowed: pad_crop, random_resized, none")
    if data_cfg.flip:
        flip = _per_image(jax.random.bernoulli(k_flip, 0.5, (images.shape[0],)), images)
        x = jnp.where(flip[:, None, None, None], x[:, :, ::-1, :], x)
    return normalize(x)
