"""Reader for BAPPS (Zhang et al. 2018, the LPIPS dataset) in its released layout.

```
<root>/2afc/{train,val}/<category>/{ref,p0,p1}/*.png   judge/*.npy  (fraction who chose p1)
<root>/jnd/val/{traditional,cnn}/{p0,p1}/*.png          same/*.npy   (fraction who said "same")
```
2AFC val categories: traditional cnn superres deblur color frameinterp (scored); train:
traditional cnn mix (LPIPS's ``train.py`` trains on these three; read by ``load_bapps(root,
split="train")``, for calibrations; it is 5.3 GB, and read whole like val). Patches are 64x64
RGB.
Files are paired by sorted name within each folder, as LPIPS's data loaders do; here the names
must also match across folders. Anything else is a ``BenchmarkError`` naming the file or folder,
raised while reading, before any scoring starts.

The embedded proxy benchmark (``evaluator.proxy``) is written in the same 2AFC layout and read
by the same functions. BAPPS itself is fetched by the user: ``print_download_instructions()``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

BAPPS_2AFC_VAL = ("traditional", "cnn", "superres", "deblur", "color", "frameinterp")
# Zhang et al. 2018 (Fig. 4, Table 5) report the val categories in two groups.
BAPPS_2AFC_GROUPS = (
    ("distortions", ("traditional", "cnn"), "traditional and CNN-based distortions"),
    (
        "real algorithms",
        ("superres", "deblur", "color", "frameinterp"),
        "super-resolution, video deblurring, colourisation, frame interpolation",
    ),
)
BAPPS_2AFC_TRAIN = ("traditional", "cnn", "mix")  # LPIPS train.py's --datasets default
BAPPS_2AFC = {"val": BAPPS_2AFC_VAL, "train": BAPPS_2AFC_TRAIN}
BAPPS_JND_VAL = ("traditional", "cnn")
IMAGE_SIZE = 64
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")
BAPPS_NOTE = "BAPPS (Zhang et al. 2018) 2AFC val + JND val, human judgements"
BAPPS_TRAIN_NOTE = "BAPPS (Zhang et al. 2018) 2AFC train, human judgements"

_URL = "https://perceptual-similarity.s3.us-west-2.amazonaws.com/dataset"
DOWNLOADS = {
    "jnd": f"{_URL}/jnd.tar.gz",
    "twoafc_val": f"{_URL}/twoafc_val.tar.gz",
    "twoafc_train": f"{_URL}/twoafc_train.tar.gz",
}


class BenchmarkError(ValueError):
    """A benchmark folder or file that cannot be read as the layout requires (one line)."""


@dataclass
class TwoAFC:
    """One 2AFC category: uint8 (N, 64, 64, 3) ref/p0/p1 and judge (N,) = fraction chose p1."""

    ref: np.ndarray
    p0: np.ndarray
    p1: np.ndarray
    judge: np.ndarray

    def __len__(self) -> int:
        return len(self.judge)


@dataclass
class JND:
    """One JND category: uint8 (N, 64, 64, 3) p0/p1 and same (N,) = fraction who said same."""

    p0: np.ndarray
    p1: np.ndarray
    same: np.ndarray

    def __len__(self) -> int:
        return len(self.same)


@dataclass
class MOS:
    """Human quality scores of distorted images (TID2013, KADID-10k): uint8 ``images`` (N, H,
    W, 3), the reference of each as an index into ``refs`` (R, H, W, 3), ``score`` (N,) the
    mean opinion (higher = better quality in both), ``types`` (N,) the distortion type names."""

    refs: np.ndarray
    ref_index: np.ndarray
    images: np.ndarray
    score: np.ndarray
    types: np.ndarray
    pair_cache: list | None = field(default=None, repr=False)  # evaluator.mos.pairs

    def __len__(self) -> int:
        return len(self.score)


@dataclass
class Benchmark:
    """A whole benchmark: 2AFC categories (their mean is the Perceptual Score) and JND ones,
    or (TID2013, KADID-10k) mean opinion scores."""

    name: str
    kind: str  # "bapps" | "proxy"
    root: str
    note: str
    twoafc: dict[str, TwoAFC] = field(default_factory=dict)
    jnd: dict[str, JND] = field(default_factory=dict)
    split: str = "val"
    version: int | None = None  # the proxy's build version; None for BAPPS
    mos: MOS | None = None  # TID2013, KADID-10k: scored by rank correlation (evaluator.mos)
    resolution: dict | None = None  # full-size benchmarks: evaluator.imagesets.resolution_record


def print_download_instructions(dest: str = "dataset") -> None:
    """Print the official BAPPS download commands (LPIPS's scripts/download_dataset.sh)."""
    d = dest.rstrip("/")
    print(
        "\n".join(
            [
                "# BAPPS (Zhang et al. 2018, https://github.com/richzhang/PerceptualSimilarity),",
                "# 6.6 GB in all: 2AFC val 1.1 GB + JND val 0.2 GB are what the evaluator scores;",
                "# 2AFC train (5.3 GB) is optional. Official download commands:",
                f"mkdir -p {d}/2afc",
                f"wget {DOWNLOADS['jnd']} -O {d}/jnd.tar.gz",
                f"tar -xf {d}/jnd.tar.gz -C {d} && rm {d}/jnd.tar.gz",
                f"wget {DOWNLOADS['twoafc_val']} -O {d}/twoafc_val.tar.gz",
                f"tar -xf {d}/twoafc_val.tar.gz -C {d}/2afc && rm {d}/twoafc_val.tar.gz",
                "# optional, training split:",
                f"wget {DOWNLOADS['twoafc_train']} -O {d}/twoafc_train.tar.gz",
                f"tar -xf {d}/twoafc_train.tar.gz -C {d}/2afc && rm {d}/twoafc_train.tar.gz",
                f"# then: python -m evaluator score --benchmark=bapps --data-dir={d} --metric=l2",
                "#   (expects 2AFC PS 63.2 for l2 and 63.1 for ssim, LPIPS's published rows),",
                f"# and set perceptual.benchmarks=proxy,bapps  perceptual.bapps_dir={d}",
            ]
        )
    )


# ----------------------------------------------------------------------------- reading


def _listing(folder: Path, exts: tuple[str, ...]) -> list[Path]:
    if not folder.is_dir():
        raise BenchmarkError(f"missing folder {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in exts and p.is_file())
    if not files:
        raise BenchmarkError(f"no {'/'.join(exts)} files in {folder}")
    return files


def _paired(folder: Path, names: tuple[str, ...], judge_name: str) -> dict[str, list[Path]]:
    """Sorted file lists of ``names`` (images) and ``judge_name`` (npy), checked to pair up."""
    lists = {n: _listing(folder / n, IMAGE_EXTS) for n in names}
    lists[judge_name] = _listing(folder / judge_name, (".npy",))
    first = names[0]
    for n, files in lists.items():
        if len(files) != len(lists[first]):
            raise BenchmarkError(
                f"{folder / n} has {len(files)} files but {folder / first} has "
                f"{len(lists[first])}; every folder of a category needs one file per example"
            )
    for i, files in enumerate(zip(*lists.values(), strict=True)):
        stems = {p.stem for p in files}
        if len(stems) != 1:
            raise BenchmarkError(
                f"file names do not pair up at index {i} in {folder}: "
                + ", ".join(str(p.relative_to(folder)) for p in files)
            )
    return lists


def _read_image(path: Path) -> np.ndarray:
    from PIL import Image

    try:
        with Image.open(path) as im:
            if im.size != (IMAGE_SIZE, IMAGE_SIZE):
                raise BenchmarkError(
                    f"{path} is {im.size[0]}x{im.size[1]}; benchmark patches must be "
                    f"{IMAGE_SIZE}x{IMAGE_SIZE}"
                )
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except BenchmarkError:
        raise
    except Exception as e:  # PIL raises several types for unreadable files
        raise BenchmarkError(f"{path} is not a readable image: {type(e).__name__}: {e}") from e


def _read_images(paths: list[Path]) -> np.ndarray:
    # PNG decoding releases the GIL, so a few threads speed up reading tens of thousands of files.
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return np.stack(list(pool.map(_read_image, paths)))


def _read_fraction(path: Path) -> float:
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:
        raise BenchmarkError(f"{path} is not a readable .npy file: {type(e).__name__}") from e
    if a.size != 1 or a.ndim > 3:
        raise BenchmarkError(
            f"{path} holds shape {a.shape}; a judgement file must hold one number (shape (1,))"
        )
    v = float(np.asarray(a, dtype=np.float64).reshape(-1)[0])
    if not 0.0 <= v <= 1.0:
        raise BenchmarkError(f"{path} holds {v}; a judgement is a fraction of people in [0, 1]")
    return v


def read_2afc(folder: str | os.PathLike) -> TwoAFC:
    """One 2AFC category folder with ref/, p0/, p1/, judge/."""
    folder = Path(folder)
    lists = _paired(folder, ("ref", "p0", "p1"), "judge")
    judge = np.array([_read_fraction(p) for p in lists["judge"]], dtype=np.float32)
    return TwoAFC(
        ref=_read_images(lists["ref"]),
        p0=_read_images(lists["p0"]),
        p1=_read_images(lists["p1"]),
        judge=judge,
    )


def read_jnd(folder: str | os.PathLike) -> JND:
    """One JND category folder with p0/, p1/, same/."""
    folder = Path(folder)
    lists = _paired(folder, ("p0", "p1"), "same")
    same = np.array([_read_fraction(p) for p in lists["same"]], dtype=np.float32)
    return JND(p0=_read_images(lists["p0"]), p1=_read_images(lists["p1"]), same=same)


def _check_root(root: Path, what: str) -> None:
    if not root.is_dir():
        raise BenchmarkError(f"{what} directory {root} does not exist")


def load_bapps(
    root: str | os.PathLike,
    categories: tuple[str, ...] | None = None,
    jnd_categories: tuple[str, ...] = BAPPS_JND_VAL,
    split: str = "val",
) -> Benchmark:
    """BAPPS 2AFC ``split`` categories (default: all of the split's, each required) and, for
    val when ``<root>/jnd`` exists, JND val. Train has no JND part."""
    if split not in BAPPS_2AFC:
        raise BenchmarkError(f"BAPPS split {split!r} is unknown; allowed: {', '.join(BAPPS_2AFC)}")
    categories = BAPPS_2AFC[split] if categories is None else categories
    root = Path(root)
    _check_root(root, "BAPPS")
    base = root / "2afc" / split
    if not base.is_dir():
        raise BenchmarkError(
            f"missing folder {base}; expected BAPPS's layout 2afc/{split}/<category>/... "
            "(python -m evaluator.bapps prints the download commands)"
        )
    for c in categories:  # every folder checked before any image is read
        if not (base / c).is_dir():
            raise BenchmarkError(
                f"missing category folder {base / c}; BAPPS 2AFC {split} has {', '.join(categories)}"
            )
    note = BAPPS_NOTE if split == "val" else BAPPS_TRAIN_NOTE
    bench = Benchmark(name="bapps", kind="bapps", root=str(root), note=note, split=split)
    jnd_base = root / "jnd" / "val"
    with_jnd = split == "val" and (root / "jnd").exists()
    if with_jnd:
        for c in jnd_categories:
            if not (jnd_base / c).is_dir():
                raise BenchmarkError(
                    f"missing category folder {jnd_base / c}; BAPPS JND val has "
                    f"{', '.join(jnd_categories)}"
                )
    for c in categories:
        bench.twoafc[c] = read_2afc(base / c)
    if with_jnd:
        for c in jnd_categories:
            bench.jnd[c] = read_jnd(jnd_base / c)
    return bench


def load_2afc_tree(
    root: str | os.PathLike,
    name: str,
    kind: str,
    note: str,
    split: str = "val",
    version: int | None = None,
) -> Benchmark:
    """Every category folder under ``<root>/2afc/<split>`` (the proxy's layout)."""
    root = Path(root)
    _check_root(root, name)
    base = root / "2afc" / split
    if not base.is_dir():
        raise BenchmarkError(f"missing folder {base}; expected 2afc/{split}/<category>/...")
    cats = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not cats:
        raise BenchmarkError(f"no category folders in {base}")
    bench = Benchmark(name=name, kind=kind, root=str(root), note=note, split=split, version=version)
    for c in cats:
        bench.twoafc[c] = read_2afc(base / c)
    return bench


if __name__ == "__main__":
    print_download_instructions()
