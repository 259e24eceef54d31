"""Reading the images of the full-size benchmarks (NIGHTS, TID2013, KADID-10k) at the resolution
they are scored at, and the ``perceptual.resolution`` / ``perceptual.image_size`` rule.

BAPPS and the proxy are 64x64 patches and always read as they are (``evaluator.bapps``). The
other three hold larger images (TID2013 and KADID-10k 512x384; NIGHTS 58 GB of PNGs), and the
study's models are trained at 32 or 64 pixels. Two ways to score them:

* ``resize`` (default): every image resized to ``size x size`` (bicubic, as DreamSim's and
  LPIPS's loaders resize; the aspect ratio of TID2013 / KADID-10k is not kept), ``size`` =
  ``perceptual.image_size``, or the trial's ``data.image_size`` when that is 0;
* ``native``: the files as they are, for fully convolutional models only (ResNet,
  EfficientNet; a ViT's position embeddings fix its grid). Every image of a benchmark must then
  have one size (images are batched), and memory grows with it: KADID-10k's 10,125 distorted
  images are 6 GB of uint8 at 512x384.

Every score block of these benchmarks records which (``"resolution"``, docs/file-contracts.md).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from evaluator.bapps import BenchmarkError

RESOLUTIONS = ("resize", "native")
# Models whose features are defined at any input size (the ViT's position embeddings are not).
FULLY_CONVOLUTIONAL = ("resnet", "efficientnet")


def csv_rows(path: Path, required: Sequence[str], layout: str) -> Iterator[tuple[str, dict]]:
    """Each row of the CSV file ``path`` as ``("<path> line N", row)``, after a one-line error
    when its header lacks a ``required`` column (``layout``: what the file should hold, such
    as "NIGHTS's data.csv has id, right_vote, ...")."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in required if c not in (reader.fieldnames or [])]
        if missing:
            raise BenchmarkError(f"{path} lacks column(s) {', '.join(missing)}; {layout}")
        for n, row in enumerate(reader, start=2):
            yield f"{path} line {n}", row


def read_image(path: Path, size: int | None) -> np.ndarray:
    """One image as uint8 RGB (H, W, 3), resized to ``size`` x ``size`` unless None."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if size is not None and im.size != (size, size):
                im = im.resize((size, size), Image.Resampling.BICUBIC)
            return np.asarray(im, dtype=np.uint8)
    except Exception as e:  # PIL raises several types for unreadable files
        raise BenchmarkError(f"{path} is not a readable image: {type(e).__name__}: {e}") from e


def read_images(paths: Sequence[Path], size: int | None) -> np.ndarray:
    """``paths`` as one uint8 array (N, H, W, 3); at native size they must share a shape."""
    workers = min(8, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        images = list(pool.map(lambda p: read_image(p, size), paths))
    if not images:
        raise BenchmarkError("no images to read")
    first = images[0].shape
    for p, im in zip(paths, images, strict=True):
        if im.shape != first:
            raise BenchmarkError(
                f"{p} is {im.shape[1]}x{im.shape[0]} but {paths[0]} is {first[1]}x{first[0]}; "
                "perceptual.resolution=native needs one image size per benchmark (use resize)"
            )
    return np.stack(images)


def case_index(folder: Path) -> dict[str, Path]:
    """``{lower-case file name: path}`` of a folder: TID2013 mixes ``I01.BMP`` and ``i25.bmp``."""
    if not folder.is_dir():
        raise BenchmarkError(f"missing folder {folder}")
    return {p.name.lower(): p for p in folder.iterdir() if p.is_file()}


def find(index: Mapping[str, Path], name: str, folder: Path, listed_in: Path) -> Path:
    path = index.get(name.lower())
    if path is None:
        raise BenchmarkError(f"{folder / name} is missing (listed in {listed_in})")
    return path


def scored_size(perc: Mapping[str, Any], data_image_size: int) -> int | None:
    """The size a trial's full-size benchmarks are read at: None for ``native``, else
    ``perceptual.image_size`` or (0) the trial's ``data.image_size``."""
    if (perc.get("resolution") or "resize") == "native":
        return None
    return int(perc.get("image_size") or 0) or int(data_image_size)


def resolution_record(size: int | None, images: np.ndarray) -> dict[str, Any]:
    """What a score block says about the resolution its images were scored at."""
    h, w = (int(x) for x in images.shape[1:3])
    if size is None:
        return {"mode": "native", "height": h, "width": w}
    return {"mode": "resize", "height": h, "width": w, "resample": "bicubic"}


def model_for(sm: Any, cfg: Mapping[str, Any], size: int | None) -> Any:
    """The ``ScoringModel`` for images of ``size`` (None: native): ``sm`` itself for a fully
    convolutional model; a ViT rebuilt from its trained variables with position embeddings
    resized to ``size`` (``features._vit_posemb``). Native size needs a fully convolutional one."""
    name = sm.model_cfg["name"]
    if name in FULLY_CONVOLUTIONAL:
        return sm
    if size is None:
        raise BenchmarkError(
            f"perceptual.resolution=native needs a fully convolutional model "
            f"({', '.join(FULLY_CONVOLUTIONAL)}); {name} is not (use resize)"
        )
    if size == sm.resolution["scored"]:
        return sm
    from evaluator.features import ScoringModel

    trained = dict(sm.native_variables or sm.variables)
    other = ScoringModel.from_variables(
        cfg, trained, batch_size=sm.batch_size, resident=sm.resident, scored_size=size
    )
    other.params_used, other.integrity = sm.params_used, sm.integrity
    return other
