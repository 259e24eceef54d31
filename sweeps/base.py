"""The one config schema of perceptual-sweeps, with its presets and validation.

``get_config(preset)`` returns the whole ``ml_collections.ConfigDict`` for one trial. Presets:

* ``embedded`` (default): Fashion-MNIST at 32x32, small ResNets, minutes on a 2-core CPU.
* ``paper``: the study's ResNet recipe on ImageNet 64x64 (SGD 0.9, LR 0.1 x B/256, wd 1e-4,
  batch 1024, 90 epochs).
* ``paper_vit`` / ``paper_efficientnet``: the study's ViT (AdamW, wd 0.3, warmup, dropout 0.1)
  and EfficientNet (RMSProp, LR 0.016 x B/256, wd 1e-5, label smoothing 0.1) recipes.

Sweep files build on it: ``get_config(arg)`` returns this config with their preset,
``get_sweep(arg)`` returns a list of ``{dotted.key: value}`` overrides, one per trial.
``validate(config)`` rejects unknown keys, wrong types and out-of-range values with one line
each (``ConfigError``) before any work starts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import ml_collections

PRESETS = ("embedded", "paper", "paper_vit", "paper_efficientnet")

RESNET_DEPTHS = (2, 3, 4, 5, 6, 10, 14, 18, 26, 34, 50, 101, 152, 200)
VIT_VARIANTS = ("Ti", "S", "B", "L", "H")
EFFICIENTNET_VARIANTS = tuple(f"b{i}" for i in range(8))
MODEL_NAMES = ("resnet", "vit", "efficientnet")
OPTIMIZERS = ("sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine", "step", "constant")
WEIGHT_DECAY_MODES = ("l2", "decoupled")
CROPS = ("pad_crop", "random_resized", "none")
DTYPES = ("float32", "bfloat16")
RESIDENT = ("auto", "yes", "no")
BENCHMARKS = ("proxy", "bapps")
DISTANCES = ("local", "meanpool", "style")
DATASETS = ("fashion_mnist", "imagenet64", "tfds:<name>")


class ConfigError(ValueError):
    """A config key, type or value that is not allowed. The message is one line."""


def _base() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.seed = 0

    c.model = ml_collections.ConfigDict()
    c.model.name = "resnet"
    c.model.depth = 6  # ResNet depth; for ViT 0 = the variant's depth
    c.model.width = 1.0  # multiplies every conv's channels (ViT: hidden and MLP size)
    c.model.variant = ""  # ViT 'B/8', 'L/4', ...; EfficientNet 'b0'..'b7'; ResNet ''
    c.model.patch_size = 0  # ViT; 0 = the variant's
    c.model.hidden_size = 0  # ViT; 0 = the variant's
    c.model.mlp_dim = 0  # ViT; 0 = the variant's
    c.model.num_heads = 0  # ViT; 0 = the variant's
    c.model.dropout = 0.0  # before the classifier
    c.model.encoder_dropout = 0.0  # ViT's own dropout (after attention / MLP)
    c.model.stochastic_depth = 0.0  # EfficientNet drop-connect rate
    c.model.dtype = "float32"  # compute dtype; parameters stay float32

    c.data = ml_collections.ConfigDict()
    c.data.name = "fashion_mnist"  # fashion_mnist | imagenet64 | tfds:<name>
    c.data.source_dir = ""  # raw files (imagenet64 batches, tfds data_dir); '' = the default
    c.data.prepared_dir = ""  # prepared splits; '' = $PSWEEPS_DATA_DIR or ./data
    c.data.image_size = 32
    c.data.num_classes = 10
    c.data.train_examples = 0  # 0 = the whole split
    c.data.eval_examples = 0  # 0 = the whole split
    c.data.crop = "pad_crop"  # pad_crop | random_resized | none
    c.data.crop_padding = 4
    c.data.flip = True
    c.data.device_resident = "auto"  # keep the split on the accelerator: auto | yes | no
    c.data.prefetch = 2  # host batches prepared ahead in a background thread

    c.train = ml_collections.ConfigDict()
    c.train.batch_size = 128  # global batch, over all processes
    c.train.epochs = 2.0
    c.train.optimizer = "sgd"  # sgd | adamw | rmsprop
    c.train.base_lr = 0.1  # per 256 images: lr = base_lr * batch_size / 256
    c.train.momentum = 0.9
    c.train.nesterov = True
    c.train.adam_b1 = 0.9
    c.train.adam_b2 = 0.999
    c.train.rmsprop_decay = 0.9
    c.train.rmsprop_eps = 1e-3
    c.train.schedule = "cosine"  # cosine | step | constant
    c.train.warmup_epochs = 0.5
    c.train.step_boundaries = (0.333, 0.667, 0.889)  # fractions of training, for 'step'
    c.train.step_factor = 0.1
    c.train.weight_decay = 1e-4
    c.train.weight_decay_mode = "l2"  # l2 (on kernels, in the loss) | decoupled (AdamW-style)
    c.train.label_smoothing = 0.0
    c.train.grad_clip = 0.0  # global-norm clip; 0 = off
    c.train.ema_decay = 0.0  # parameter EMA; 0 = off
    c.train.log_every_steps = 50
    c.train.eval_every_steps = 0  # 0 = once per epoch (and always at the end)

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 500

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 100  # resume checkpoints
    c.checkpoint.max_to_keep = 2  # latest ones kept for resume
    c.checkpoint.keep_every_steps = 0  # also keep every k-th step for the evaluator; 0 = none
    c.checkpoint.async_save = True

    c.perceptual = ml_collections.ConfigDict()
    c.perceptual.benchmarks = "proxy"  # comma list of proxy, bapps
    c.perceptual.bapps_dir = ""
    c.perceptual.proxy_dir = ""  # '' = <prepared_dir>/proxy
    c.perceptual.distances = "local,meanpool,style"
    c.perceptual.batch_size = 256

    c.distributed = ml_collections.ConfigDict()
    c.distributed.initialize = "auto"  # auto (TPU pod / Slurm / coordinator set) | yes | no
    c.distributed.coordinator_address = ""
    c.distributed.num_processes = 0
    c.distributed.process_id = -1
    return c


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The whole config for one trial, with preset ``arg`` (default ``embedded``)."""
    preset = arg or "embedded"
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r} is unknown; allowed: {', '.join(PRESETS)}")
    c = _base()
    apply_overrides(c, PRESET_OVERRIDES[preset])
    validate(c)
    return c


# Presets as override dicts, so a preset is read the same way as a trial.
PRESET_OVERRIDES: dict[str, dict[str, Any]] = {
    "embedded": {
        "model.name": "resnet",
        "model.depth": 6,
        "model.width": 0.25,
        "data.name": "fashion_mnist",
        "data.image_size": 32,
        "data.num_classes": 10,
        "train.batch_size": 128,
        "train.epochs": 2.0,
        "train.base_lr": 0.2,
        "train.warmup_epochs": 0.2,
        "train.weight_decay": 5e-4,
        "checkpoint.every_steps": 100,
        "checkpoint.keep_every_steps": 100,
    },
    "paper": {
        "model.name": "resnet",
        "model.depth": 50,
        "model.width": 1.0,
        "model.dtype": "bfloat16",
        "data.name": "imagenet64",
        "data.image_size": 64,
        "data.num_classes": 1000,
        "data.crop": "pad_crop",
        "train.batch_size": 1024,
        "train.epochs": 90.0,
        "train.optimizer": "sgd",
        "train.base_lr": 0.1,
        "train.momentum": 0.9,
        "train.nesterov": False,
        "train.schedule": "cosine",
        "train.warmup_epochs": 5.0,
        "train.weight_decay": 1e-4,
        "train.weight_decay_mode": "l2",
        "train.log_every_steps": 100,
        "train.eval_every_steps": 0,
        "eval.batch_size": 1000,
        "checkpoint.every_steps": 1000,
        "checkpoint.keep_every_steps": 1000,
        "perceptual.benchmarks": "bapps",
    },
}


def recipe(model_name: str, preset: str) -> dict[str, Any]:
    """The study's optimiser recipe for ``model_name`` under ``preset`` as overrides."""
    if model_name not in MODEL_NAMES:
        raise ConfigError(
            f"model.name={model_name!r} is unknown; allowed: {', '.join(MODEL_NAMES)}"
        )
    if not preset.startswith("paper"):
        return {"model.name": model_name}
    if model_name == "resnet":
        return {
            k: v for k, v in PRESET_OVERRIDES["paper"].items() if k.startswith(("model.", "train."))
        }
    if model_name == "vit":
        return {
            "model.name": "vit",
            "model.variant": "B/8",
            "model.depth": 0,
            "model.dropout": 0.1,
            "model.encoder_dropout": 0.1,
            "train.optimizer": "adamw",
            "train.base_lr": 3e-3 * 256 / 4096,  # 3e-3 at batch 4096, the ViT paper's AdamW LR
            "train.adam_b1": 0.9,
            "train.adam_b2": 0.999,
            "train.weight_decay": 0.3,
            "train.weight_decay_mode": "decoupled",
            "train.warmup_epochs": 10.0,
            "train.grad_clip": 1.0,
            "train.schedule": "cosine",
        }
    return {
        "model.name": "efficientnet",
        "model.variant": "b0",
        "model.dropout": 0.2,
        "model.stochastic_depth": 0.2,
        "train.optimizer": "rmsprop",
        "train.base_lr": 0.016,
        "train.momentum": 0.9,
        "train.rmsprop_decay": 0.9,
        "train.rmsprop_eps": 1e-3,
        "train.weight_decay": 1e-5,
        "train.weight_decay_mode": "l2",
        "train.label_smoothing": 0.1,
        "train.warmup_epochs": 5.0,
        "train.schedule": "cosine",
        "train.ema_decay": 0.9999,
    }


PRESET_OVERRIDES["paper_vit"] = {**PRESET_OVERRIDES["paper"], **recipe("vit", "paper")}
PRESET_OVERRIDES["paper_efficientnet"] = {
    **PRESET_OVERRIDES["paper"],
    **recipe("efficientnet", "paper"),
}


# ----------------------------------------------------------------------------- overrides


def _type_name(v: Any) -> str:
    return type(v).__name__


def _coerce(key: str, old: Any, new: Any) -> Any:
    """``new`` converted to the type of the schema's ``old`` value, or a ConfigError."""
    if isinstance(old, bool):
        if isinstance(new, bool):
            return new
        if isinstance(new, str) and new.lower() in ("true", "false"):
            return new.lower() == "true"
    elif isinstance(old, int):
        if isinstance(new, int) and not isinstance(new, bool):
            return new
        if isinstance(new, float) and new.is_integer():
            return int(new)
    elif isinstance(old, float):
        if isinstance(new, (int, float)) and not isinstance(new, bool):
            return float(new)
    elif isinstance(old, str):
        if isinstance(new, str):
            return new
    elif isinstance(old, tuple):
        if isinstance(new, (list, tuple)):
            return tuple(_coerce(key, old[0] if old else 0.0, x) for x in new)
    raise ConfigError(f"{key}={new!r} has type {_type_name(new)}; expected {_type_name(old)}")


def apply_overrides(config: ml_collections.ConfigDict, overrides: Mapping[str, Any]) -> None:
    """Set dotted keys in place, rejecting unknown keys and wrong types (one line each)."""
    for key, value in overrides.items():
        node = config
        parts = key.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, ml_collections.ConfigDict) or part not in node:
                known = (
                    ", ".join(sorted(node.keys()))
                    if isinstance(node, ml_collections.ConfigDict)
                    else ""
                )
                where = ".".join(parts[:i]) or "config"
                raise ConfigError(f"unknown config key {key!r}: {where} has {known}")
            if i < len(parts) - 1:
                node = node[part]
        old = node[parts[-1]]
        if isinstance(old, ml_collections.ConfigDict):
            raise ConfigError(f"{key} is a section, not a value; set one of its keys")
        with node.unlocked():
            node[parts[-1]] = _coerce(key, old, value)


def config_from(
    preset: str | None, overrides: Mapping[str, Any] | None = None
) -> ml_collections.ConfigDict:
    """``get_config(preset)`` plus ``overrides``, validated."""
    c = get_config(preset)
    apply_overrides(c, overrides or {})
    validate(c)
    return c


# ----------------------------------------------------------------------------- validation


def _flatten(c: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in c.items():
        key = f"{prefix}{k}"
        if isinstance(v, (Mapping, ml_collections.ConfigDict)):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def flatten(config: Mapping[str, Any]) -> dict[str, Any]:
    """``{dotted.key: value}`` for every leaf of a config (or of its JSON dict)."""
    return _flatten(config)


def _one_of(allowed: Iterable[Any]) -> tuple[Callable[[Any], bool], str]:
    allowed = tuple(allowed)
    return (lambda v: v in allowed), "one of " + ", ".join(map(str, allowed))


def _range(
    lo: float, hi: float, lo_open: bool = False, hi_open: bool = True
) -> tuple[Callable, str]:
    def ok(v: Any) -> bool:
        if not math.isfinite(v):
            return False
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

    text = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return ok, "a number in " + text


_INT_POS = ((lambda v: v >= 1), "an integer >= 1")
_INT_NONNEG = ((lambda v: v >= 0), "an integer >= 0")
_FRAC = _range(0.0, 1.0)

_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "seed": _INT_NONNEG,
    "model.name": _one_of(MODEL_NAMES),
    "model.width": _range(0.0625, 4.0, hi_open=False),
    "model.patch_size": _INT_NONNEG,
    "model.hidden_size": _INT_NONNEG,
    "model.mlp_dim": _INT_NONNEG,
    "model.num_heads": _INT_NONNEG,
    "model.dropout": _FRAC,
    "model.encoder_dropout": _FRAC,
    "model.stochastic_depth": _FRAC,
    "model.dtype": _one_of(DTYPES),
    "data.name": (
        lambda v: v in ("fashion_mnist", "imagenet64") or (v.startswith("tfds:") and len(v) > 5),
        "one of " + ", ".join(DATASETS),
    ),
    "data.image_size": ((lambda v: 8 <= v <= 1024), "an integer in [8, 1024]"),
    "data.num_classes": ((lambda v: v >= 2), "an integer >= 2"),
    "data.train_examples": _INT_NONNEG,
    "data.eval_examples": _INT_NONNEG,
    "data.crop": _one_of(CROPS),
    "data.crop_padding": _INT_NONNEG,
    "data.device_resident": _one_of(RESIDENT),
    "data.prefetch": _INT_NONNEG,
    "train.batch_size": _INT_POS,
    "train.epochs": _range(0.0, 10000.0, lo_open=True, hi_open=False),
    "train.optimizer": _one_of(OPTIMIZERS),
    "train.base_lr": _range(0.0, 1000.0, lo_open=True),
    "train.momentum": _FRAC,
    "train.adam_b1": _FRAC,
    "train.adam_b2": _FRAC,
    "train.rmsprop_decay": _FRAC,
    "train.rmsprop_eps": _range(0.0, 1.0, lo_open=True, hi_open=False),
    "train.schedule": _one_of(SCHEDULES),
    "train.warmup_epochs": _range(0.0, 10000.0, hi_open=False),
    "train.step_boundaries": (
        lambda v: all(0.0 < x < 1.0 for x in v) and list(v) == sorted(v),
        "increasing fractions of training in (0, 1)",
    ),
    "train.step_factor": _range(0.0, 1.0, lo_open=True, hi_open=False),
    "train.weight_decay": _range(0.0, 10.0, hi_open=False),
    "train.weight_decay_mode": _one_of(WEIGHT_DECAY_MODES),
    "train.label_smoothing": _FRAC,
    "train.grad_clip": _range(0.0, 1e9, hi_open=False),
    "train.ema_decay": _FRAC,
    "train.log_every_steps": _INT_POS,
    "train.eval_every_steps": _INT_NONNEG,
    "eval.batch_size": _INT_POS,
    "checkpoint.every_steps": _INT_POS,
    "checkpoint.max_to_keep": _INT_POS,
    "checkpoint.keep_every_steps": _INT_NONNEG,
    "perceptual.benchmarks": (
        lambda v: bool(v) and all(b in BENCHMARKS for b in v.split(",")),
        "a comma list of " + ", ".join(BENCHMARKS),
    ),
    "perceptual.distances": (
        lambda v: bool(v) and all(d in DISTANCES for d in v.split(",")),
        "a comma list of " + ", ".join(DISTANCES),
    ),
    "perceptual.batch_size": _INT_POS,
    "distributed.initialize": _one_of(("auto", "yes", "no")),
    "distributed.num_processes": _INT_NONNEG,
    "distributed.process_id": ((lambda v: v >= -1), "an integer >= -1 (-1 = auto)"),
}

_SCHEMA = _flatten(_base())


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"{key}={value!r} is not allowed; expected {allowed}")


def validate(config: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` (one line) for the first unknown key, wrong type or bad value."""
    flat = _flatten(config)
    for key, value in flat.items():
        if key not in _SCHEMA:
            raise ConfigError(f"unknown config key {key!r}; see sweeps/base.py for the schema")
        _coerce(key, _SCHEMA[key], value)  # type check
        if key in _CHECKS:
            ok, allowed = _CHECKS[key]
            if not ok(value):
                _fail(key, value, allowed)
    for key in _SCHEMA:
        if key not in flat:
            raise ConfigError(f"config key {key!r} is missing; see sweeps/base.py for the schema")
    _validate_model(flat)


def _validate_model(flat: Mapping[str, Any]) -> None:
    name, depth, variant = flat["model.name"], flat["model.depth"], flat["model.variant"]
    if name == "resnet":
        if depth not in RESNET_DEPTHS:
            _fail(
                "model.depth", depth, "a ResNet depth, one of " + ", ".join(map(str, RESNET_DEPTHS))
            )
        if variant:
            _fail("model.variant", variant, "'' for resnet (depth and width select the model)")
    elif name == "vit":
        base, _, patch = variant.partition("/")
        if base not in VIT_VARIANTS or not patch.isdigit() or int(patch) < 1:
            _fail("model.variant", variant, "a ViT variant like B/16, B/8, L/4 (Ti, S, B, L, H)")
        if depth < 0:
            _fail("model.depth", depth, "an integer >= 0 for vit (0 = the variant's depth)")
    elif name == "efficientnet":
        if variant not in EFFICIENTNET_VARIANTS:
            _fail("model.variant", variant, "one of " + ", ".join(EFFICIENTNET_VARIANTS))
