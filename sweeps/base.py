"""The one config schema of perceptual-sweeps and its rules: overrides, validation, drift.

``get_config(preset)`` returns the whole ``ml_collections.ConfigDict`` for one trial, with one of
the presets of ``sweeps/recipes/`` (``embedded`` default, ``paper``, ``paper_vit``,
``paper_efficientnet``: the study's recipes, each value cited there).

Sweep files build on it: ``get_config(arg)`` returns this config with their preset,
``get_sweep(arg)`` returns a list of ``{dotted.key: value}`` overrides, one per trial.
``validate(config)`` rejects unknown keys, wrong types and out-of-range values with one line
each (``ConfigError``) before any work starts. The allowed values of a key that names code (a
model, a dataset, a benchmark, a distance) are owned by that code and asked for here (the
check helpers are in ``sweeps/_checks.py``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import ml_collections

from sweeps import _checks as ck
from sweeps.recipes import PRESET_OVERRIDES, PRESETS

OPTIMIZERS = ("sgd", "adamw", "rmsprop")
SCHEDULES = ("cosine", "step", "exponential", "constant")
WEIGHT_DECAY_MODES = ("l2", "decoupled")
WEIGHT_DECAY_ON = ("kernels", "non_norm")
CROPS = ("pad_crop", "random_resized", "distorted_bbox", "center", "none")
EVAL_CROPS = ("none", "center")
RESIDENT = ("auto", "yes", "no")
# Where a trial runs, not what it trains: ignored when configs are compared.
PLACEMENT_KEYS = ("distributed.",)


class ConfigError(ValueError):
    """A config key, type or value that is not allowed. The message is one line."""


def schema() -> ml_collections.ConfigDict:
    """Every key with its default, before any preset."""
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
    c.model.skip = True  # ResNet residual additions; False = a plain net (no shortcut at all)
    c.model.bn_momentum = 0.0  # BatchNorm running averages; 0 = the family's (0.9 / 0.99)

    c.data = ml_collections.ConfigDict()
    c.data.name = "fashion_mnist"  # fashion_mnist | imagenet64 | tfds:<name>
    c.data.source_dir = ""  # raw files (imagenet64 batches, tfds data_dir); '' = the default
    c.data.prepared_dir = ""  # prepared splits; '' = $PSWEEPS_DATA_DIR or ./data
    c.data.image_size = 32
    c.data.num_classes = 10
    c.data.train_examples = 0  # 0 = the whole split
    c.data.eval_examples = 0  # 0 = the whole split
    c.data.classes = 0  # k > 0: train and evaluate on k random classes, labels 0..k-1; 0 = all
    c.data.class_seed = 0  # which k classes (trainer.data.class_subset)
    c.data.crop = "pad_crop"  # pad_crop | random_resized | distorted_bbox | center | none
    c.data.eval_crop = "none"  # eval preprocessing before normalising: none | center
    c.data.crop_padding = 4
    c.data.flip = True
    c.data.device_resident = "auto"  # keep the split on the accelerator: auto | yes | no
    c.data.prefetch = 2  # host batches prepared ahead in a background thread

    c.train = ml_collections.ConfigDict()
    _train_keys(c.train)  # the optimiser, schedule and regularisers

    c.eval = ml_collections.ConfigDict()
    c.eval.batch_size = 500

    c.checkpoint = ml_collections.ConfigDict()
    c.checkpoint.every_steps = 100  # resume checkpoints
    c.checkpoint.max_to_keep = 2  # latest ones kept for resume
    c.checkpoint.keep_every_steps = 0  # also keep every k-th step for the evaluator; 0 = none
    # > 0: save and keep every this many epochs instead (both step counts then come from the
    # run's steps per epoch, which depends on the data found: trainer/checkpoint.py intervals)
    c.checkpoint.every_epochs = 0.0
    c.checkpoint.async_save = True
    c.perceptual = ml_collections.ConfigDict()
    _perceptual_keys(c.perceptual)  # the evaluator's section

    c.distributed = ml_collections.ConfigDict()
    c.distributed.initialize = "auto"  # auto (TPU VM / Slurm / coordinator set) | yes | no
    c.distributed.coordinator_address = ""
    c.distributed.num_processes = 0
    c.distributed.process_id = -1
    return c


def _train_keys(t: ml_collections.ConfigDict) -> None:
    t.batch_size = 128  # global batch, over all processes
    t.epochs = 2.0
    t.optimizer = "sgd"  # sgd | adamw | rmsprop
    t.base_lr = 0.1  # per 256 images: lr = base_lr * batch_size / 256
    t.momentum = 0.9
    t.nesterov = True
    t.adam_b1 = 0.9
    t.adam_b2 = 0.999
    t.rmsprop_decay = 0.9
    t.rmsprop_eps = 1e-3
    t.schedule = "cosine"  # cosine | step | exponential | constant
    t.warmup_epochs = 0.5
    t.step_boundaries = (0.333, 0.667, 0.889)  # fractions of training, for 'step'
    t.step_factor = 0.1
    t.exp_decay_epochs = 2.4  # 'exponential': x exp_decay_factor every this many epochs
    t.exp_decay_factor = 0.97
    t.weight_decay = 1e-4
    t.weight_decay_mode = "l2"  # l2 (in the loss) | decoupled (AdamW-style)
    t.weight_decay_on = "kernels"  # kernels (ndim > 1) | non_norm (all but norm layers)
    t.label_smoothing = 0.0
    t.grad_clip = 0.0  # global-norm clip; 0 = off
    t.ema_decay = 0.0  # parameter EMA; 0 = off
    t.ema_warmup = False  # TF's num_updates: decay min(ema_decay, (1 + n) / (10 + n))
    t.log_every_steps = 50
    t.eval_every_steps = 0  # 0 = once per epoch (and always at the end)


def _perceptual_keys(p: ml_collections.ConfigDict) -> None:
    p.benchmarks = "proxy"  # comma list of proxy, bapps, nights, tid2013, kadid10k
    p.bapps_dir = ""
    p.nights_dir = ""  # NIGHTS root (data.csv, ref/, distort/)
    p.tid2013_dir = ""  # TID2013 root (mos_with_names.txt, reference_images/, distorted_images/)
    p.kadid10k_dir = ""  # KADID-10k root (dmos.csv, images/)
    p.resolution = "resize"  # NIGHTS/TID2013/KADID-10k: resize | native (fully convolutional)
    p.image_size = 0  # their size with resize; 0 = the trial's data.image_size
    p.proxy_dir = ""  # '' = <prepared_dir>/proxy
    p.distances = "local,meanpool,style"  # unlearned; lin comes with calibrate
    p.batch_size = 256
    p.probes = True  # the study's probes (evaluator/probes.py)
    p.frequency_examples = 256  # eval images of the frequency probe; 0 = none
    p.calibrate = False  # fit LPIPS's lin per checkpoint (evaluator/calibration.py)
    p.calibrate_steps = 30000  # its Adam steps


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The whole config for one trial, with preset ``arg`` (default ``embedded``)."""
    preset = arg or "embedded"
    if preset not in PRESETS:
        raise ConfigError(f"preset {preset!r} is unknown; allowed: {', '.join(PRESETS)}")
    c = schema()
    apply_overrides(c, PRESET_OVERRIDES[preset])
    validate(c)
    return c


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


def flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{dotted.key: value}`` for every leaf of a config (or of its JSON dict)."""
    out: dict[str, Any] = {}
    for k, v in config.items():
        key = f"{prefix}{k}"
        if isinstance(v, (Mapping, ml_collections.ConfigDict)):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


_CHECKS: dict[str, ck.Check] = {
    "seed": ck.INT_NONNEG,
    "model.name": ck.one_of(ck.model_names),
    "model.depth": ck.INT_NONNEG,
    "model.width": ck.in_range(0.0625, 4.0, hi_open=False),
    "model.patch_size": ck.INT_NONNEG,
    "model.hidden_size": ck.INT_NONNEG,
    "model.mlp_dim": ck.INT_NONNEG,
    "model.num_heads": ck.INT_NONNEG,
    "model.dropout": ck.FRAC,
    "model.encoder_dropout": ck.FRAC,
    "model.stochastic_depth": ck.FRAC,
    "model.dtype": ck.one_of(ck.dtypes),
    "model.bn_momentum": ck.FRAC,
    "data.name": ck.dataset(),
    "data.image_size": ck.is_(lambda v: 8 <= v <= 1024, "an integer in [8, 1024]"),
    "data.num_classes": ck.is_(lambda v: v >= 2, "an integer >= 2"),
    "data.train_examples": ck.INT_NONNEG,
    "data.eval_examples": ck.INT_NONNEG,
    "data.classes": ck.INT_NONNEG,
    "data.class_seed": ck.INT_NONNEG,
    "data.crop": ck.one_of(CROPS),
    "data.eval_crop": ck.one_of(EVAL_CROPS),
    "data.crop_padding": ck.INT_NONNEG,
    "data.device_resident": ck.one_of(RESIDENT),
    "data.prefetch": ck.INT_NONNEG,
    "train.batch_size": ck.INT_POS,
    "train.epochs": ck.in_range(0.0, 10000.0, lo_open=True, hi_open=False),
    "train.optimizer": ck.one_of(OPTIMIZERS),
    "train.base_lr": ck.in_range(0.0, 1000.0, lo_open=True),
    "train.momentum": ck.FRAC,
    "train.adam_b1": ck.FRAC,
    "train.adam_b2": ck.FRAC,
    "train.rmsprop_decay": ck.FRAC,
    "train.rmsprop_eps": ck.in_range(0.0, 1.0, lo_open=True, hi_open=False),
    "train.schedule": ck.one_of(SCHEDULES),
    "train.warmup_epochs": ck.in_range(0.0, 10000.0, hi_open=False),
    "train.step_boundaries": ck.is_(
        lambda v: all(0.0 < x < 1.0 for x in v) and list(v) == sorted(v),
        "increasing fractions of training in (0, 1)",
    ),
    "train.step_factor": ck.in_range(0.0, 1.0, lo_open=True, hi_open=False),
    "train.exp_decay_epochs": ck.in_range(0.0, 10000.0, lo_open=True),
    "train.exp_decay_factor": ck.in_range(0.0, 1.0, lo_open=True, hi_open=False),
    "train.weight_decay": ck.in_range(0.0, 10.0, hi_open=False),
    "train.weight_decay_mode": ck.one_of(WEIGHT_DECAY_MODES),
    "train.weight_decay_on": ck.one_of(WEIGHT_DECAY_ON),
    "train.label_smoothing": ck.FRAC,
    "train.grad_clip": ck.in_range(0.0, 1e9, hi_open=False),
    "train.ema_decay": ck.FRAC,
    "train.log_every_steps": ck.INT_POS,
    "train.eval_every_steps": ck.INT_NONNEG,
    "eval.batch_size": ck.INT_POS,
    "checkpoint.every_steps": ck.INT_POS,
    "checkpoint.max_to_keep": ck.INT_POS,
    "checkpoint.keep_every_steps": ck.INT_NONNEG,
    "checkpoint.every_epochs": ck.in_range(0.0, 10000.0, hi_open=False),
    "perceptual.benchmarks": ck.comma_list(ck.benchmarks),
    "perceptual.resolution": ck.one_of(ck.resolutions),
    "perceptual.image_size": ck.is_(
        lambda v: v == 0 or 8 <= v <= 1024, "0 or an integer in [8, 1024]"
    ),
    "perceptual.distances": ck.comma_list(ck.distances, " (lin: perceptual.calibrate=true)"),
    "perceptual.frequency_examples": ck.INT_NONNEG,
    "perceptual.calibrate_steps": ck.INT_POS,
    "perceptual.batch_size": ck.INT_POS,
    "distributed.initialize": ck.one_of(("auto", "yes", "no")),
    "distributed.num_processes": ck.INT_NONNEG,
    "distributed.process_id": ck.is_(lambda v: v >= -1, "an integer >= -1 (-1 = auto)"),
}

_SCHEMA = flatten(schema())


def check_values(flat: Mapping[str, Any]) -> None:
    """Type and range of each ``{dotted.key: value}`` (keys must be in the schema); the first
    bad one raises ``ConfigError`` (one line). The model zoo checks model sections with this."""
    for key, value in flat.items():
        if key not in _SCHEMA:
            raise ConfigError(f"unknown config key {key!r}; see sweeps/base.py for the schema")
        _coerce(key, _SCHEMA[key], value)  # type check
        if key in _CHECKS:
            ok, allowed = _CHECKS[key]
            if not ok(value):
                raise ConfigError(f"{key}={value!r} is not allowed; expected {allowed()}")


def validate(config: Mapping[str, Any]) -> None:
    """Raise ``ConfigError`` (one line) for the first unknown key, wrong type or bad value,
    then for keys that disagree, then for a model its own module rejects
    (``trainer.models.check``)."""
    flat = flatten(config)
    check_values(flat)
    for key in _SCHEMA:
        if key not in flat:
            raise ConfigError(f"config key {key!r} is missing; see sweeps/base.py for the schema")
    k = flat["data.classes"]
    if k and flat["data.num_classes"] != k:
        raise ConfigError(
            f"data.num_classes={flat['data.num_classes']!r} with data.classes={k}; expected "
            f"data.num_classes={k} (the classifier has one output per class trained on)"
        )
    if flat["perceptual.resolution"] == "native" and flat["model.name"] not in ck.convolutional():
        raise ConfigError(
            f"perceptual.resolution=native with model.name={flat['model.name']!r}; native "
            f"resolution needs a fully convolutional model ({', '.join(ck.convolutional())})"
        )
    from trainer.models import check

    check(config["model"], int(flat["data.image_size"]))


# ----------------------------------------------------------------------------- drift


def normalised(config: Mapping[str, Any]) -> dict[str, Any]:
    """Flattened config with JSON types (tuples -> lists), so a file and a live config compare."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    return json.loads(json.dumps(flatten(config), default=list))


def drift_text(diff: list[str], limit: int = 6) -> str:
    """``config_drift``'s list for a one-line message: the first ``limit`` keys, then a count."""
    more = f", and {len(diff) - limit} more" if len(diff) > limit else ""
    return ", ".join(diff[:limit]) + more


def config_drift(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``key: old -> new`` for every flattened key whose value differs (or exists on one side),
    ignoring the ``distributed.*`` placement keys. Either side may be a ConfigDict or the dict
    of a config.json. A key the old side lacks is no drift while the new side holds the schema's
    default: a key added to the schema defaults to what runs did before it existed."""
    a, b = normalised(old), normalised(new)
    defaults = normalised(schema())
    missing = object()
    show = lambda v: "<absent>" if v is missing else json.dumps(v)
    out = []
    for key in sorted(set(a) | set(b)):
        if key.startswith(PLACEMENT_KEYS):
            continue
        va, vb = a.get(key, missing), b.get(key, missing)
        if va is missing and key in defaults and vb == defaults[key]:
            continue
        if va != vb:
            out.append(f"{key}: {show(va)} -> {show(vb)}")
    return out
