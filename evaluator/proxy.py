"""The embedded proxy benchmark: BAPPS-style 2AFC triplets built offline from public photos.

This is a PROXY, not BAPPS: its "judgements" come from a rule, not from people. It exists so the
whole pipeline (train -> score -> report) runs offline and quickly on a CPU; real conclusions
need BAPPS (``evaluator.bapps``).

Source images: the public-domain / CC0 photos bundled with scikit-image (``skimage.data``:
astronaut, chelsea, coffee, rocket, hubble_deep_field, stereo_motorcycle, immunohistochemistry,
and the greyscale camera, coins, moon, clock, text, page, brick, grass, gravel), each resampled
to a short side of 192 or 320 pixels. A reference is a random 64x64 patch (flat patches are
skipped). Each triplet draws two distortions of the reference from its category's family at two
different severities (1..5); the milder one is "closer":

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

Nuisance changes people ignore: in half of the triplets the closer image is made from the scene
shifted by 1-2 px (30 %) or with the global brightness moved by 2-4 % (20 %), before its (milder)
distortion.
Pixel L2 then often prefers the other image, so it is clearly imperfect here, while a good
perceptual distance should not be fooled.

Judge (fraction of "people" choosing p1, as in BAPPS's judge/*.npy): 1.0 or 0.0 when the two
severities are 2+ levels apart, 0.8 or 0.2 when they are adjacent (in favour of the milder one).
Which of p0/p1 is the milder one is random.

Layout written (the BAPPS 2AFC layout, read by ``evaluator.bapps.load_2afc_tree``)::

    <dir>/2afc/val/<category>/{ref,p0,p1}/NNNNNN.png   judge/NNNNNN.npy   (shape (1,))
    <dir>/README.txt   <dir>/proxy.json   (parameters; written last: its presence = complete)

The build is deterministic for a seed (same bytes), is written to a temporary folder and renamed
into place, so a killed build leaves nothing half-written.
"""

from __future__ import annotations

import functools
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from evaluator.bapps import Benchmark, BenchmarkError, load_2afc_tree
from trainer.data.load import resolve_prepared_dir

VERSION = 1
CATEGORIES = ("noise", "blur", "jpeg", "color", "contrast", "warp")
DEFAULT_PER_CATEGORY = 200
DEFAULT_SEED = 0
PATCH = 64
NOTE = "embedded proxy built from scikit-image photos, not BAPPS"

COLOR_SOURCES = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "hubble_deep_field",
    "stereo_motorcycle",
    "immunohistochemistry",
)
GREY_SOURCES = ("camera", "coins", "moon", "clock", "text", "page", "brick", "grass", "gravel")
SHORT_SIDES = (192, 320)

NOISE_SIGMA = (0.02, 0.05, 0.09, 0.14, 0.20)
BLUR_SIGMA = (0.6, 1.0, 1.5, 2.2, 3.2)
JPEG_QUALITY = (60, 35, 20, 10, 5)
HUE_SHIFT = (0.03, 0.06, 0.10, 0.15, 0.22)
CONTRAST = (0.15, 0.30, 0.45, 0.60, 0.72)
WARP_PX = (0.6, 1.2, 2.0, 3.0, 4.5)
MARGIN = 8  # source pixels kept around a patch for shifts and warps


def default_dir(config=None) -> Path:
    """``perceptual.proxy_dir``, else ``<prepared_dir>/proxy`` with the data layer's rule for
    prepared_dir (``data.prepared_dir``, else $PSWEEPS_DATA_DIR, else ./data)."""
    if config is not None:
        proxy_dir = _get(config, "perceptual", "proxy_dir")
        if proxy_dir:
            return Path(proxy_dir)
    prepared = _get(config, "data", "prepared_dir") if config is not None else None
    return resolve_prepared_dir(prepared) / "proxy"


def _get(config, section: str, key: str):
    try:
        return config[section][key]
    except (KeyError, TypeError):
        return None


# ----------------------------------------------------------------------------- sources


@functools.cache
def _sources() -> tuple[tuple[str, np.ndarray], ...]:
    """The resampled source photos (cached: read-only, shared by every build in a process)."""
    from skimage import data, transform

    out = []
    for name in COLOR_SOURCES + GREY_SOURCES:
        img = getattr(data, name)()
        if isinstance(img, tuple):  # stereo_motorcycle -> (left, right, disparity)
            img = img[0]
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=-1)
        img = img[..., :3].astype(np.float32) / 255.0
        for side in SHORT_SIDES:
            scale = side / min(img.shape[:2])
            small = transform.rescale(img, scale, channel_axis=-1, anti_aliasing=True, order=1)
            small = np.clip(small, 0.0, 1.0).astype(np.float32)
            small.setflags(write=False)
            out.append((name, small))
    return tuple(out)


# ----------------------------------------------------------------------------- distortions


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x * 255.0), 0, 255).astype(np.uint8)


def _noise(x, level, rng):
    return x + rng.normal(0.0, NOISE_SIGMA[level], size=x.shape).astype(np.float32)


def _blur(x, level, rng):
    from skimage.filters import gaussian

    return gaussian(x, sigma=BLUR_SIGMA[level], channel_axis=-1, mode="reflect")


def _jpeg(x, level, rng):
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(_to_uint8(x)).save(buf, format="JPEG", quality=JPEG_QUALITY[level])
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


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


def _crop(img, y, x, margin):
    return img[y - margin : y + PATCH + margin, x - margin : x + PATCH + margin]


def _distorted(category, window, level, rng) -> np.ndarray:
    """Distort the patch with its margin (so blur/warp see real context), then cut the patch."""
    out = DISTORTIONS[category](window, level, rng)
    return _to_uint8(out[MARGIN : MARGIN + PATCH, MARGIN : MARGIN + PATCH])


def _triplet(category, sources, rng):
    color_only = category == "color"
    pool = [s for s in sources if not color_only or s[0] in COLOR_SOURCES]
    while True:
        _, img = pool[rng.integers(len(pool))]
        h, w = img.shape[:2]
        lo = MARGIN + 2
        y = int(rng.integers(lo, h - PATCH - lo))
        x = int(rng.integers(lo, w - PATCH - lo))
        ref = img[y : y + PATCH, x : x + PATCH]
        if ref.std() * 255.0 >= 12.0:  # skip flat patches: no distortion order to judge there
            break
    mild, strong = sorted(int(v) for v in rng.choice(5, size=2, replace=False))
    win_strong = _crop(img, y, x, MARGIN)
    r = rng.random()  # nuisance on the milder image: 30 % shift, 20 % brightness, 50 % none
    if r < 0.3:
        dy, dx = 0, 0
        while dy == 0 and dx == 0:
            dy, dx = (int(v) for v in rng.integers(-2, 3, size=2))
        win_mild = _crop(img, y + dy, x + dx, MARGIN)
    elif r < 0.5:
        win_mild = _crop(img, y, x, MARGIN) + rng.choice((-1.0, 1.0)) * rng.uniform(0.02, 0.04)
    else:
        win_mild = _crop(img, y, x, MARGIN)
    p_mild = _distorted(category, win_mild, mild, rng)
    p_strong = _distorted(category, win_strong, strong, rng)
    confident = strong - mild >= 2
    mild_is_p1 = bool(rng.random() < 0.5)
    p_choose_mild = 1.0 if confident else 0.8
    judge = p_choose_mild if mild_is_p1 else 1.0 - p_choose_mild
    p0, p1 = (p_strong, p_mild) if mild_is_p1 else (p_mild, p_strong)
    return _to_uint8(ref), p0, p1, judge


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(arr).save(path, format="PNG")


README = """\
EMBEDDED PROXY BENCHMARK -- NOT BAPPS

Built offline by perceptual-sweeps (evaluator/proxy.py) from the public-domain / CC0 photos that
ship with scikit-image. It copies BAPPS's 2AFC layout (2afc/val/<category>/{{ref,p0,p1,judge}})
so the same reader scores it, but its "human judgements" are a rule: the less distorted of two
versions of a reference patch is the closer one.

Categories (distortion family, severity 1 -> 5): noise (Gaussian sigma 0.02-0.20), blur
(Gaussian sigma 0.6-3.2 px), jpeg (quality 60-5), color (hue rotation 0.03-0.22 turn +
saturation), contrast (x(1 -/+ 0.15-0.72) around the mean), warp (smooth displacement
0.6-4.5 px). Each triplet uses two different severities of one family.

Nuisance changes: in about half of the triplets the milder image is made from the scene shifted
by 1-2 px or with brightness moved by 2-4 % before its distortion; people ignore these, pixel L2
does not.

judge/*.npy = fraction choosing p1: 1.0/0.0 when the severities are 2+ levels apart, 0.8/0.2
when adjacent, always in favour of the milder one.

Parameters: seed {seed}, {per_category} triplets per category, version {version}.
Scores on this proxy say whether a pipeline works; they are not comparable to BAPPS numbers.
"""


def build_proxy(
    root: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    per_category: int = DEFAULT_PER_CATEGORY,
    categories: tuple[str, ...] = CATEGORIES,
) -> Path:
    """Write the proxy into ``root`` (which must not exist), atomically (temp dir + rename)."""
    root = Path(root)
    if per_category < 1:
        raise BenchmarkError(f"proxy per_category={per_category} must be >= 1")
    for c in categories:
        if c not in DISTORTIONS:
            raise BenchmarkError(
                f"proxy category {c!r} is unknown; allowed: {', '.join(CATEGORIES)}"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", suffix=".tmp", dir=root.parent))
    try:
        sources = _sources()
        for ci, c in enumerate(categories):
            rng = np.random.default_rng([seed, VERSION, ci])
            d = tmp / "2afc" / "val" / c
            for sub in ("ref", "p0", "p1", "judge"):
                (d / sub).mkdir(parents=True)
            for i in range(per_category):
                ref, p0, p1, judge = _triplet(c, sources, rng)
                name = f"{i:06d}"
                _write_png(d / "ref" / f"{name}.png", ref)
                _write_png(d / "p0" / f"{name}.png", p0)
                _write_png(d / "p1" / f"{name}.png", p1)
                np.save(d / "judge" / f"{name}.npy", np.array([judge], dtype=np.float32))
        manifest = _manifest(seed, per_category, categories)
        (tmp / "README.txt").write_text(
            README.format(seed=seed, per_category=per_category, version=VERSION)
        )
        (tmp / "proxy.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        os.rename(tmp, root)  # fails if another process finished first; theirs is kept
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _manifest(seed, per_category, categories) -> dict:
    return {
        "kind": "proxy",
        "version": VERSION,
        "seed": int(seed),
        "per_category": int(per_category),
        "categories": list(categories),
        "note": NOTE,
    }


def ensure_proxy(
    root: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    per_category: int = DEFAULT_PER_CATEGORY,
) -> Path:
    """Build the proxy at ``root`` unless a complete one with the same parameters is there."""
    root = Path(root)
    manifest_path = root / "proxy.json"
    if not root.exists():
        try:
            build_proxy(root, seed=seed, per_category=per_category)
        except OSError:
            if not manifest_path.exists():  # not a concurrent builder winning the rename
                raise
    if not manifest_path.exists():
        raise BenchmarkError(
            f"{root} exists but has no proxy.json; it is not a complete proxy benchmark "
            "(remove it to rebuild, or point perceptual.proxy_dir elsewhere)"
        )
    got = json.loads(manifest_path.read_text())
    if got.get("kind") != "proxy" or got.get("version") != VERSION:
        raise BenchmarkError(
            f"{manifest_path} is proxy version {got.get('version')}; this code reads version "
            f"{VERSION} (remove {root} to rebuild)"
        )
    return root


def load_proxy(
    root: str | os.PathLike,
    seed: int = DEFAULT_SEED,
    per_category: int = DEFAULT_PER_CATEGORY,
) -> Benchmark:
    """The proxy benchmark at ``root``, built on first use."""
    root = ensure_proxy(root, seed=seed, per_category=per_category)
    return load_2afc_tree(root, name="proxy", kind="proxy", note=NOTE)
