"""Vectorised image resizing for preparation (jax.image: antialiased, batched, jit-compiled)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

CHUNK = 4096  # images per jitted call: one compile per (chunk shape, size), bounded memory


@functools.partial(jax.jit, static_argnames=("size",))
def _resize(x: jax.Array, size: int) -> jax.Array:
    n, _, _, c = x.shape
    y = jax.image.resize(x.astype(jnp.float32), (n, size, size, c), "cubic", antialias=True)
    return jnp.clip(jnp.round(y), 0, 255).astype(jnp.uint8)


def to_rgb_size(images: np.ndarray, size: int) -> np.ndarray:
    """(N,h,w), (N,h,w,1) or (N,h,w,3) uint8 -> (N,size,size,3) uint8.

    Bicubic (Keys) with antialiasing when shrinking; grey is repeated into 3 channels after
    resizing. Images already at ``size`` are returned unchanged (pixel-exact).
    """
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, _ = images.shape
    if (h, w) != (size, size):
        out = np.empty((n, size, size, images.shape[-1]), np.uint8)
        for i in range(0, n, CHUNK):
            chunk = images[i : i + CHUNK]
            m = chunk.shape[0]
            if n > CHUNK and m < CHUNK:  # pad the tail so every call reuses one compilation
                chunk = np.concatenate([chunk, np.zeros((CHUNK - m, *chunk.shape[1:]), np.uint8)])
            out[i : i + m] = np.asarray(_resize(chunk, size))[:m]
        images = out
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return np.ascontiguousarray(images, dtype=np.uint8)
