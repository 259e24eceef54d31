"""The embedded proxy's patches and its severity categories: two severities of one distortion.

Why these categories and what the judge says is in ``evaluator.proxy``'s docstring; this module
holds the patch sampling both kinds of triplet share and the six distortion families:

=========  ===========================================================================
category   distortion (severity 1 -> 5)
=========  ===========================================================================
noise      additive Gaussian noise, sigma 0.02 -> 0.20 (of the 0..1 range), per channel
blur       Gaussian blur, sigma 0.6 -> 3.2 px
jpeg       JPEG compression, quality 60 -> 5
color      hue rotation 0.03 -> 0.22 turn and saturation change (colour sources only)
contrast   contrast scaled around the mean by 1 -/+ 0.15 -> 0.72 (lower or higher)
warp       smooth random displacement field, amplitude 0.6 -> 4.5 px
=========  ===========================================================================

In half of the triplets the milder image is made from the scene shifted by 1-2 px (30 %) or with
the global brightness moved by 2-4 % (20 %), before its distortion.
"""

from __future__ import annotations

import io

import numpy as np

PATCH = 64
MARGIN = 8  # source pixels kept around a patch for shifts, blurs and warps
MIN_STD = 12.0  # a patch with a smaller pixel std (0..255) is flat: no distortion order to judge
CENTRE = (slice(MARGIN, MARGIN + PATCH), slice(MARGIN, MARGIN + PATCH))

NOISE_SIGMA = (0.02, 0.05, 0.09, 0.14, 0.20)
BLUR_SIGMA = (0.6, 1.0, 1.5, 2.2, 3.2)
JPEG_QUALITY = (60, 35, 20, 10, 5)
HUE_SHIFT = (0.03, 0.06, 0.10, 0.15, 0.22)
CONTRAST = (0.15, 0.30, 0.45, 0.60, 0.72)
WARP_PX = (0.6, 1.2, 2.0, 3.0, 4.5)


def to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def crop(img: np.ndarray, y: int, x: int, margin: int) -> np.ndarray:
    return img[y - margin : y + PATCH + margin, x - margin : x + PATCH + margin]


def pick_patch(pool, rng) -> tuple[np.ndarray, int, int]:
    """A random non-flat patch of a random source: (image, y, x) of its top-left corner."""
    while True:
        _, img = pool[rng.integers(len(pool))]
        h, w = img.shape[:2]
        lo = MARGIN + 2
        y = int(rng.integers(lo, h - PATCH - lo))
        x = int(rng.integers(lo, w - PATCH - lo))
        if img[y : y + PATCH, x : x + PATCH].std() * 255.0 >= MIN_STD:
            return img, y, x


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    from skimage.filters import gaussian

    return gaussian(x, sigma=sigma, channel_axis=-1, mode="reflect")


def jpeg(x: np.ndarray, quality: int) -> np.ndarray:
    """JPEG-compress a float RGB image at ``quality``; float32 0..1 back."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(to_uint8(x)).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def _noise(x, level, rng):
    return x + rng.normal(0.0, NOISE_SIGMA[level], size=x.shape).astype(np.float32)


def _blur(x, level, rng):
    return gaussian_blur(x, BLUR_SIGMA[level])


def _jpeg(x, level, rng):
    return jpeg(x, JPEG_QUALITY[level])


def _color(x, level, rng):
    from skimage import color

    hsv = color.rgb2hsv(np.clip(x, 0.0, 1.0))
    hsv[..., 0] = (hsv[..., 0] + rng.choice((-1.0, 1.0)) * HUE_SHIFT[level]) % 1.0
    sat = 1.0 + rng.choice((-1.0, 1.0)) * 1.5 * HUE_SHIFT[level]
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0.0, 1.0)
    return color.hsv2rgb(hsv).astype(np.float32)


def _contrast(x, level, rng):
    a = CONTRAST[level]
    factor = 1.0 - a if rng.random() < 0.5 else 1.0 + 1.5 * a
    mean = x.mean(axis=(0, 1), keepdims=True)
    return mean + factor * (x - mean)


def _warp(x, level, rng):
    from scipy import ndimage

    h, w = x.shape[:2]
    fields = []
    for _ in range(2):
        f = ndimage.gaussian_filter(rng.normal(size=(h, w)), sigma=6.0, mode="reflect")
        f /= np.abs(f).max() + 1e-12
        fields.append(f * WARP_PX[level])
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    coords = [yy + fields[0], xx + fields[1]]
    return np.stack(
        [ndimage.map_coordinates(x[..., c], coords, order=1, mode="reflect") for c in range(3)],
        axis=-1,
    )


DISTORTIONS = {
    "noise": _noise,
    "blur": _blur,
    "jpeg": _jpeg,
    "color": _color,
    "contrast": _contrast,
    "warp": _warp,
}
SEVERITY_CATEGORIES = tuple(DISTORTIONS)


def _distorted(category, window, level, rng) -> np.ndarray:
    """Distort the patch with its margin (so blur/warp see real context), then cut the patch.
    A per-pixel change (colour) gives the same patch on the patch alone, in half the time."""
    if category == "color":
        return to_uint8(_color(window[CENTRE], level, rng))
    return to_uint8(DISTORTIONS[category](window, level, rng)[CENTRE])


def severity_triplet(category, sources, color_names, rng):
    """(ref, p0, p1, judge, facts) with two severities of ``category``; the milder one is
    closer. ``facts``: the severities (1..5), the nuisance on the milder image, which is p1."""
    pool = [s for s in sources if category != "color" or s[0] in color_names]
    img, y, x = pick_patch(pool, rng)
    ref = img[y : y + PATCH, x : x + PATCH]
    mild, strong = sorted(int(v) for v in rng.choice(5, size=2, replace=False))
    win_strong = crop(img, y, x, MARGIN)
    r = rng.random()  # nuisance on the milder image: 30 % shift, 20 % brightness, 50 % none
    nuisance = "shift" if r < 0.3 else "brightness" if r < 0.5 else None
    if r < 0.3:
        dy, dx = 0, 0
        while dy == 0 and dx == 0:
            dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
        win_mild = crop(img, y + dy, x + dx, MARGIN)
    elif r < 0.5:
        win_mild = crop(img, y, x, MARGIN) + rng.choice((-1.0, 1.0)) * rng.uniform(0.02, 0.04)
    else:
        win_mild = crop(img, y, x, MARGIN)
    p_mild = _distorted(category, win_mild, mild, rng)
    p_strong = _distorted(category, win_strong, strong, rng)
    confident = strong - mild >= 2
    mild_is_p1 = bool(rng.random() < 0.5)
    p_choose_mild = 1.0 if confident else 0.8
    judge = p_choose_mild if mild_is_p1 else 1.0 - p_choose_mild
    p0, p1 = (p_strong, p_mild) if mild_is_p1 else (p_mild, p_strong)
    facts = {"mild": mild + 1, "strong": strong + 1, "nuisance": nuisance, "mild_is_p1": mild_is_p1}
    return to_uint8(ref), p0, p1, judge, facts
