"""Perceptual distances against plain numpy on random features; pixel metrics against skimage."""

from __future__ import annotations

import zlib

import jax
import numpy as np
import pytest

from evaluator import distances as D
from sweeps.base import ConfigError, config_from

EPS = 1e-10


def _unit(f):
    return f / (np.sqrt(np.sum(f**2, axis=-1, keepdims=True)) + EPS)


def _as4(f):
    return f[:, None, None, :] if f.ndim == 2 else f


def np_local(f0, f1):
    n0, n1 = _unit(_as4(f0)), _unit(_as4(f1))
    out = []
    for i in range(len(n0)):
        per_pos = ((n0[i] - n1[i]) ** 2).sum(axis=-1)  # (H, W)
        out.append(per_pos.mean())
    return np.array(out)


def np_meanpool(f0, f1):
    out = []
    for a, b in zip(_as4(f0), _as4(f1), strict=True):
        m0 = _unit(a.mean(axis=(0, 1)))
        m1 = _unit(b.mean(axis=(0, 1)))
        out.append(((m0 - m1) ** 2).sum() / a.shape[-1])
    return np.array(out)


def np_style(f0, f1):
    out = []
    for a, b in zip(_as4(f0), _as4(f1), strict=True):
        c = a.shape[-1]
        fa = _unit(a).reshape(-1, c)
        fb = _unit(b).reshape(-1, c)
        p = fa.shape[0]
        g0 = fa.T @ fa / p
        g1 = fb.T @ fb / p
        out.append(((g0 - g1) ** 2).sum() / c**2)
    return np.array(out)


SHAPES = {
    "spatial": (3, 4, 5, 6),  # C <= H*W: Gram matrices formed directly
    "deep": (3, 2, 2, 16),  # C > H*W: the position-kernel form of the Gram distance
    "cls": (3, 7),  # ViT CLS vectors, treated as 1x1
}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
@pytest.mark.parametrize(
    "kind,ref",
    [("local", np_local), ("meanpool", np_meanpool), ("style", np_style)],
)
def test_tap_distance_matches_numpy(kind, ref, shape):
    rng = np.random.default_rng(zlib.crc32(repr((kind, shape)).encode()))
    f0 = rng.normal(size=shape).astype(np.float32)
    f1 = (f0 + 0.7 * rng.normal(size=shape)).astype(np.float32)
    got = np.asarray(D.TAP_FUNCTIONS[kind](f0, f1))
    want = ref(f0.astype(np.float64), f1.astype(np.float64))
    assert got.shape == (shape[0],)
    np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-6)
    assert np.all(np.asarray(D.TAP_FUNCTIONS[kind](f0, f0)) < 1e-6)


@pytest.mark.parametrize("shape", [(4, 8, 8, 16), (4, 2, 2, 64)], ids=["spatial", "deep"])
def test_style_keeps_its_accuracy_for_nearly_equal_features(shape):
    # Similar images have nearly equal Gram matrices; the distance is formed from the feature
    # difference, not by subtracting the Grams, so float32 keeps ~1e-5 relative accuracy.
    rng = np.random.default_rng(3)
    f0 = rng.normal(size=shape).astype(np.float32)
    f1 = (f0 + 1e-3 * rng.normal(size=shape)).astype(np.float32)
    want = np_style(f0.astype(np.float64), f1.astype(np.float64))
    np.testing.assert_allclose(np.asarray(D.style_tap(f0, f1)), want, rtol=5e-5)


def test_total_distance_sums_taps():
    rng = np.random.default_rng(0)
    t0 = {"a": rng.normal(size=(2, 4, 4, 3)), "b": rng.normal(size=(2, 5))}
    t1 = {k: v + rng.normal(size=v.shape) for k, v in t0.items()}
    t0 = {k: v.astype(np.float32) for k, v in t0.items()}
    t1 = {k: v.astype(np.float32) for k, v in t1.items()}
    for kind, ref in (("local", np_local), ("meanpool", np_meanpool), ("style", np_style)):
        want = sum(ref(t0[k].astype(np.float64), t1[k].astype(np.float64)) for k in t0)
        per_tap = jax.jit(lambda a, b, f=D.TAP_FUNCTIONS[kind]: {k: f(a[k], b[k]) for k in a})
        np.testing.assert_allclose(D.total_distance(per_tap(t0, t1)), want, rtol=2e-4)
    # Distance names are checked where a config names them, with the owner's list.
    with pytest.raises(ConfigError, match="perceptual.distances='cosine'.*local, meanpool, style"):
        config_from("embedded", {"perceptual.distances": "cosine"})


def _bright(rng, n):
    # values >= 64 pass LPIPS's float32 tensor round trip unchanged
    return rng.integers(64, 256, size=(n, 16, 16, 3), dtype=np.uint8)


def test_pixel_l2_and_ssim_are_lpips_lab_versions():
    from skimage import color
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(1)
    a, b = _bright(rng, 3), _bright(rng, 3)
    la = color.rgb2lab(a).astype(np.float32).astype(np.float64)
    lb = color.rgb2lab(b).astype(np.float32).astype(np.float64)
    want_l2 = 0.5 * ((la / 100 - lb / 100) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(D.pixel_l2(a, b), want_l2, rtol=1e-6)
    want_ssim = [
        (1 - structural_similarity(la[i], lb[i], data_range=100, channel_axis=-1)) / 2
        for i in range(3)
    ]
    np.testing.assert_allclose(D.pixel_ssim(a, b), want_ssim, rtol=1e-6)
    assert np.all(D.pixel_l2(a, a) == 0) and np.allclose(D.pixel_ssim(a, a), 0)


def test_pixel_triplets_equal_the_pairwise_metrics(monkeypatch):
    # each image converted to Lab once for l2 and ssim together, over several chunks
    monkeypatch.setattr(D, "_CHUNK", 3)
    rng = np.random.default_rng(3)
    ref, p0, p1 = (rng.integers(0, 256, size=(7, 16, 16, 3), dtype=np.uint8) for _ in range(3))
    got = D.pixel_triplets(["l2", "ssim", "psnr"], ref, p0, p1)
    for m, fn in D.PIXEL_FUNCTIONS.items():
        np.testing.assert_array_equal(got[m][0], fn(ref, p0))
        np.testing.assert_array_equal(got[m][1], fn(ref, p1))
    assert D.pixel_triplets(["ssim"], ref[:0], p0[:0], p1[:0])["ssim"][0].shape == (0,)
    with pytest.raises(ValueError, match="'lpips' is unknown; allowed: l2, ssim, psnr"):
        D.pixel_triplets(["lpips"], ref, p0, p1)


def test_lpips_lab_is_rgb2lab_of_the_round_trip_bit_for_bit():
    from skimage import color

    rng = np.random.default_rng(2)
    grid = np.stack(np.meshgrid(*[np.arange(256, dtype=np.uint8)] * 2, indexing="ij"), -1)
    every = np.stack([grid[..., 0], grid[..., 1], grid[..., 0] ^ grid[..., 1]], -1)  # 65k colours
    for img in (rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8), every[None]):
        want = color.rgb2lab(D._ROUNDTRIP[img]).astype(np.float32)
        np.testing.assert_array_equal(D.lpips_lab(img), want)


def test_lpips_round_trip_truncates_dark_values():
    # torchvision ToTensor/Normalize then tensor2im in float32 gives back v-1 for v in 1..63
    table = D._ROUNDTRIP
    assert table[0] == 0 and table[255] == 255
    assert np.all(table[64:] == np.arange(64, 256))
    assert np.all(table[1:64] <= np.arange(1, 64))
    with pytest.raises(ValueError, match="uint8 RGB"):
        D.pixel_l2(np.zeros((1, 4, 4, 3), np.float32), np.zeros((1, 4, 4, 3), np.float32))
