"""TensorFlow checkpoints of tensorflow/tpu's ResNet v1 read into this project's Flax ResNet.

The study's released checkpoints (``gs://gresearch/perceptual_similarity``) come from
tensorflow/tpu's ``models/official/resnet`` at the commit of pull request 991 ("Cloud TPU
Changes for Perceptual Similarity", 0325bff), trained with TPUEstimator and saved by a TF1
``Saver`` as ``model.ckpt-<step>.{index,data-*}``. The bucket's exact layout is documented
nowhere reachable; every assumption this mapping makes is in this docstring and in
``tf_layers``:

* **Names.** Variables are named by ``tf.layers``: ``conv2d[_k]/kernel`` (HWIO, no bias),
  ``batch_normalization[_k]/{gamma,beta,moving_mean,moving_variance}``, ``dense/{kernel,bias}``,
  where ``k`` counts the layers of that type in the order they were created. A common name
  prefix (a variable scope around the model) is tolerated. ``global_step`` gives the step;
  anything under a model variable's name (``conv2d/kernel/Momentum``: optimiser slots, EMA
  shadows) is skipped; other variables are listed as ignored.
* **Order** (resnet_model.py at 0325bff: ``resnet_generator`` l. 669-844, ``residual_block``
  l. 413-489, ``bottleneck_block`` l. 492-602, ``block_group`` l. 605-666): stem conv + BN,
  then per block the projection shortcut (first block of each group: 1x1 conv + BN) *before*
  the main path, main-path convs each followed by its BN, finally ``dense``. ResNet-6 is
  ``layers=[0, 0, 0, 0]`` (l. 856) with ``second_conv=False`` (l. 639): each group runs one
  block of a strided 3x3 conv + BN (gamma 0) beside the projection, the Flax ``single`` block.
* **Shapes** are this project's Flax ResNet's (``trainer/models/resnet.py``) for the depth and
  width asked for; ``num_classes`` comes from ``dense/kernel`` (tensorflow/tpu uses 1000, or
  1001 with a background class). The Flax model matches the TF code layer for layer (fixed
  padding ``(k-1)//2`` = ``conv2d_fixed_padding`` l. 357-410 for odd kernels, SAME max-pool,
  the stride in a bottleneck's 3x3 conv, projection in every group's first block, global mean
  + dense with bias), so nothing but the tree changes.
* **BatchNorm** epsilon is 1e-5 on both sides (resnet_model.py l. 38). ``tf.layers`` with
  ``fused=True`` in the TF 1.x/2.x of the study's time raised it to 1.001e-5 (a cuDNN minimum,
  since removed from TensorFlow); this changes a BN output by 5e-9 / (variance + 1e-5)
  relative at most, under 1e-6 for any variance above 0.005.
* **Input**: resnet_main.py (l. 235-236, 372-373) normalises 0-255 pixels with
  ``(x - 255 * MEAN) / (255 * STD)``, MEAN = (0.485, 0.456, 0.406), STD = (0.229, 0.224, 0.225):
  the same constants as ``trainer.data.normalize``'s ``(x / 255 - MEAN) / STD``, equal in
  exact arithmetic and within 1e-6 in float32. (With bfloat16 input images, under
  ``precision=bfloat16``, the TF code cast the constants to bfloat16 first: 123.5 for 123.675,
  58.5 for 58.395, shifts of 0.3% of a standard deviation, the size of bf16's own rounding of
  the pixels; scoring here uses the float32 constants.)

TensorFlow is imported only inside the functions that read files (``pip install -e '.[tf]'``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from trainer.models.resnet import LAYOUTS

# (kind, tf.layers default name, {tf leaf: (flax collection, flax leaf)})
TF_KINDS: dict[str, tuple[str, dict[str, tuple[str, str]]]] = {
    "conv": ("conv2d", {"kernel": ("params", "kernel")}),
    "bn": (
        "batch_normalization",
        {
            "gamma": ("params", "scale"),
            "beta": ("params", "bias"),
            "moving_mean": ("batch_stats", "mean"),
            "moving_variance": ("batch_stats", "var"),
        },
    ),
    "dense": ("dense", {"kernel": ("params", "kernel"), "bias": ("params", "bias")}),
}
STEP_VARIABLE = "global_step"
_LEAVES = sorted({leaf for _, leaves in TF_KINDS.values() for leaf in leaves})
_MODEL_VAR = re.compile(
    r"^(?P<prefix>(?:[^/]+/)*?)(?P<layer>(?:conv2d|batch_normalization|dense)(?:_\d+)?)"
    rf"/(?P<leaf>{'|'.join(_LEAVES)})(?P<slot>/.+)?$"
)
_CKPT_FILE = re.compile(r"^(?P<base>.+)-(?P<step>\d+)\.index$")


class TFCheckpointError(ValueError):
    """A TF checkpoint that does not fit the Flax ResNet asked for (one line)."""


def tf_layers(depth: int) -> list[tuple[str, str, str]]:
    """``(kind, tf layer name, flax module path)`` for every layer of the depth-``depth`` ResNet,
    in the order tensorflow/tpu's resnet_model.py creates them."""
    kind, stages = LAYOUTS[depth]
    counts = {k: 0 for k in TF_KINDS}
    out: list[tuple[str, str, str]] = []

    def add(k: str, path: str) -> None:
        n = counts[k]
        counts[k] += 1
        base = TF_KINDS[k][0]
        out.append((k, base if n == 0 else f"{base}_{n}", path))

    add("conv", "stem_conv")
    add("bn", "stem_bn")
    main = {"single": 1, "basic": 2, "bottleneck": 3}[kind]
    for i, num_blocks in enumerate(stages):
        for j in range(num_blocks):
            block = f"stage{i + 1}_block{j + 1}"
            if j == 0:  # the projection shortcut is created before the main path
                add("conv", f"{block}/proj_conv")
                add("bn", f"{block}/proj_bn")
            for c in range(1, main + 1):
                add("conv", f"{block}/conv{c}")
                add("bn", f"{block}/bn{c}")
    add("dense", "head")
    return out


def depths_with(num_convs: int) -> list[int]:
    """The depths whose ResNet has ``num_convs`` conv2d kernels (for a mismatch's hint)."""
    return [d for d in sorted(LAYOUTS) if sum(k == "conv" for k, _, _ in tf_layers(d)) == num_convs]


# ----------------------------------------------------------------------------- the mapping


@dataclass
class Plan:
    """How one checkpoint's variables become the Flax ResNet's ``{"params", "batch_stats"}``."""

    prefix: str
    num_classes: int
    entries: list[tuple[str, str, tuple[str, ...], tuple[int, ...]]]  # tf name, coll, path, shape
    step_variable: str | None
    skipped: list[str] = field(default_factory=list)  # optimiser slots, EMA shadows
    ignored: list[str] = field(default_factory=list)  # neither model, slot nor step


def classify(shapes: Mapping[str, Any]) -> dict[str, Any]:
    """Sort variable names into model variables ``{name without prefix: full name}``, their
    common ``prefix``, ``slots`` (under a model variable), the ``step`` variable and ``other``."""
    model: dict[str, str] = {}
    prefixes: dict[str, str] = {}
    slots, other, step = [], [], None
    for name in sorted(shapes):
        m = _MODEL_VAR.match(name)
        if name == STEP_VARIABLE or name.endswith("/" + STEP_VARIABLE):
            step = name
        elif m and m["slot"]:
            slots.append(name)
        elif m:
            model[f"{m['layer']}/{m['leaf']}"] = name
            prefixes.setdefault(m["prefix"], name)
        else:
            other.append(name)
    if len(prefixes) > 1:
        (p1, n1), (p2, n2) = sorted(prefixes.items())[:2]
        raise TFCheckpointError(
            f"model variables under two prefixes: {p1 or '(none)'!r} ({n1}) and {p2!r} ({n2}); "
            "expected one model"
        )
    prefix = next(iter(prefixes), "")
    return {"model": model, "prefix": prefix, "slots": slots, "step": step, "other": other}


def _shape(s: Any) -> tuple[int, ...]:
    return tuple(int(x) for x in s)


def plan(shapes: Mapping[str, Any], model_cfg: Mapping[str, Any]) -> Plan:
    """Check a checkpoint's ``{name: shape}`` against the Flax ResNet of ``model_cfg`` (its
    depth and width) and return the mapping; ``TFCheckpointError`` names the first variable
    that does not fit and what was expected there."""
    from trainer.models import build_model

    depth, width = int(model_cfg["depth"]), float(model_cfg.get("width", 1.0))
    if model_cfg.get("name", "resnet") != "resnet" or depth not in LAYOUTS:
        raise TFCheckpointError(f"only ResNets of depth {sorted(LAYOUTS)} can be imported")
    c = classify(shapes)
    model, prefix = c["model"], c["prefix"]
    if "dense/kernel" not in model:
        raise TFCheckpointError(f"{prefix}dense/kernel is missing; expected the classifier")
    num_classes = _shape(shapes[model["dense/kernel"]])[-1]
    module = build_model(dict(model_cfg), num_classes)
    abstract = jax.eval_shape(
        lambda x: module.init({"params": jax.random.key(0)}, x, train=False),
        jax.ShapeDtypeStruct((1, 64, 64, 3), jnp.float32),
    )
    what = f"the depth-{depth} width-{width:g} ResNet"
    layers = tf_layers(depth)
    convs = sum(1 for k in model if k.startswith("conv2d") and k.endswith("/kernel"))
    hint = ""
    if convs != sum(k == "conv" for k, _, _ in layers):
        fits = depths_with(convs)
        hint = f"; its {convs} conv2d kernels fit " + (
            f"depth {', '.join(map(str, fits))}" if fits else "no supported depth"
        )
    stem = _shape(shapes[model["conv2d/kernel"]])[-1] if "conv2d/kernel" in model else None
    if stem is not None and stem != _shape(abstract["params"]["stem_conv"]["kernel"].shape)[-1]:
        hint += f"; its stem's {stem} channels mean width {stem / 64:g}"
    entries = []
    for kind, layer, path in layers:
        for leaf, (coll, flax_leaf) in TF_KINDS[kind][1].items():
            key = f"{layer}/{leaf}"
            keys = (*path.split("/"), flax_leaf)
            want = _shape(_leaf(abstract[coll], keys).shape)
            if key not in model:
                raise TFCheckpointError(
                    f"{prefix}{key} is missing; {what} expects it with shape {list(want)} "
                    f"({path}/{flax_leaf}){hint}"
                )
            got = _shape(shapes[model[key]])
            if got != want:
                raise TFCheckpointError(
                    f"{model[key]} has shape {list(got)}; {what} expects {list(want)} there "
                    f"({path}/{flax_leaf}){hint}"
                )
            entries.append((model[key], coll, keys, want))
    used = {e[0] for e in entries}
    extra = [n for n in model.values() if n not in used]
    if extra:
        raise TFCheckpointError(
            f"{extra[0]} is not part of {what} ({len(extra)} such variable(s)){hint}"
        )
    return Plan(prefix, num_classes, entries, c["step"], c["slots"], c["other"])


def _leaf(tree: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    for k in keys:
        tree = tree[k]
    return tree


def convert(p: Plan, get_tensor: Callable[[str], Any]) -> dict[str, Any]:
    """``{"params", "batch_stats"}`` (float32 numpy) from ``get_tensor(tf name)``."""
    out: dict[str, Any] = {"params": {}, "batch_stats": {}}
    for name, coll, keys, shape in p.entries:
        value = np.asarray(get_tensor(name), np.float32)
        if value.shape != shape:  # the index said otherwise: a damaged checkpoint
            raise TFCheckpointError(f"{name} reads as shape {list(value.shape)}, not {list(shape)}")
        node = out[coll]
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = value
    return out


# ----------------------------------------------------------------------------- files


def find_checkpoints(directory: str | Path) -> dict[int, str]:
    """``{step: checkpoint prefix}`` for the ``<name>-<step>.index`` files in ``directory``."""
    d = Path(directory)
    if not d.is_dir():
        raise TFCheckpointError(f"{d}: no such directory; expected TF checkpoints there")
    found: dict[str, dict[int, str]] = {}
    for f in d.iterdir():
        m = _CKPT_FILE.match(f.name)
        if m:
            found.setdefault(m["base"], {})[int(m["step"])] = str(d / f"{m['base']}-{m['step']}")
    if not found:
        raise TFCheckpointError(f"{d} holds no TF checkpoint (<name>-<step>.index files)")
    if len(found) > 1:
        raise TFCheckpointError(
            f"{d} holds checkpoints of several names ({', '.join(sorted(found))}); expected one run"
        )
    return dict(sorted(next(iter(found.values())).items()))


def _tf():
    # Only files are read: no oneDNN kernels are needed, nor their banner and C++ log lines.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        import tensorflow as tf
    except ImportError:
        raise TFCheckpointError(
            "reading TensorFlow checkpoints needs TensorFlow, the tf extra: pip install -e '.[tf]'"
        ) from None
    return tf


def _tf_error(ckpt: str, e: BaseException) -> TFCheckpointError:
    first = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return TFCheckpointError(f"{Path(ckpt).name}: unreadable ({type(e).__name__}: {first[:200]})")


def list_variables(ckpt: str) -> dict[str, tuple[int, ...]]:
    """``{name: shape}`` of a checkpoint, from its index file alone."""
    tf = _tf()
    try:
        return {n: _shape(s) for n, s in tf.train.list_variables(ckpt)}
    except Exception as e:  # TF raises many types (DataLossError, NotFoundError, ...)
        raise _tf_error(ckpt, e) from None


def read_checkpoint(ckpt: str, p: Plan) -> tuple[dict[str, Any], int | None]:
    """The Flax variables of checkpoint ``ckpt`` mapped by ``p``, and its ``global_step``."""
    tf = _tf()
    try:
        reader = tf.train.load_checkpoint(ckpt)
        variables = convert(p, reader.get_tensor)
        step = int(reader.get_tensor(p.step_variable)) if p.step_variable else None
    except TFCheckpointError as e:
        raise TFCheckpointError(f"{Path(ckpt).name}: {e}") from None
    except Exception as e:
        raise _tf_error(ckpt, e) from None
    return variables, step
