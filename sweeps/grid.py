"""Small helpers for writing sweep files: grids of overrides, seeds, the config arg and names.

A sweep file is ``get_config(arg)`` (the base config with the sweep's preset) plus
``get_sweep(arg)`` (a list of ``{dotted.key: value}`` overrides, one per trial). Axes compose
with ``product`` and ``chain``; a new sweep takes a few lines::

    from sweeps import grid

    def get_config(arg=None):
        return grid.config(arg)

    def get_sweep(arg=None):
        preset, opts = grid.parse_arg(arg)
        return grid.product(
            grid.axis("train.label_smoothing", [0.0, 0.1]),
            grid.axis("model.depth", [6, 18]),
            grid.seeds(opts["seeds"]),
        )

Most sweep files have an embedded grid and a paper grid of models and values; ``seeded(arg,
embedded, paper)`` picks one by the arg's preset and adds the seeds, and ``short_config`` is
their ``get_config``.

The arg is ``<preset>[,key=value...]``: ``"paper"``, ``"paper,seeds=3"``, ``"seeds=2"``
(preset ``embedded``). The only option is ``seeds`` (trials per grid point, default 1).

Trial names are derived from the overrides (``depth-50``, ``wd-3e-05_seed-1``): each key by
its alias (or the last part of the dotted key), each value in its shortest readable form, keeping
only filesystem-safe characters. A sweep file may define ``trial_name(overrides) -> str`` to name
its trials otherwise (``archs.py`` does: ``resnet-50``, ``vit-B8``).
(ml_collections has no sweep helper; big_vision's and scenic's ``hyper`` module is not public.)
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import ml_collections

from sweeps import base, recipes

SWEEP_PRESETS = ("embedded", "paper")

# What the embedded sweeps add to the embedded preset so a whole sweep trains, scores and reports
# in minutes on a 2-core CPU: 20k training images, no crop/flip augmentation (two epochs of
# augmented Fashion-MNIST underfit; docs/performance.md, "Choices"), and a checkpoint per epoch
# instead of every 100 steps, which halves what the evaluator scores. Per epoch, not a step count:
# an epoch is 93 steps of 128 on the shipped 12,000-image subset and 156 on Debian's full set.
EMBEDDED_SHORT = {
    "data.train_examples": 20000,
    "data.crop": "none",
    "data.flip": False,
    "checkpoint.every_epochs": 1.0,
}
OPTIONS = {"seeds": 1}

# Short names for the swept keys, used in trial names.
ALIASES = {
    "model.depth": "depth",
    "model.width": "width",
    "model.variant": "variant",
    "model.dropout": "dropout",
    "model.encoder_dropout": "encdrop",
    "model.stochastic_depth": "sd",
    "train.epochs": "epochs",
    "train.weight_decay": "wd",
    "train.label_smoothing": "ls",
    "train.base_lr": "lr",
    "train.batch_size": "bs",
    "data.crop": "crop",
    "data.classes": "classes",
    "model.skip": "skip",
    "seed": "seed",
}

# The study's one-dimensional sweeps train these five architectures, each with its recipe.
STUDY_RESNETS = (6, 50, 200)
STUDY_VITS = ("B/8", "L/4")

Overrides = dict[str, Any]


def parse_arg(
    arg: str | None, defaults: Mapping[str, int] | None = None
) -> tuple[str, dict[str, int]]:
    """``"paper,seeds=3"`` -> ``("paper", {"seeds": 3})``; a bad part raises one-line ConfigError.
    Options the arg does not give come from ``defaults``, then ``OPTIONS``."""
    preset, opts = "embedded", {**OPTIONS, **(defaults or {})}
    for i, part in enumerate(p.strip() for p in (arg or "").split(",")):
        if not part:
            continue
        if "=" not in part:
            if i != 0:
                raise base.ConfigError(f"sweep arg {arg!r}: the preset must come first")
            if part not in SWEEP_PRESETS:
                raise base.ConfigError(
                    f"sweep preset {part!r} is unknown; allowed: {', '.join(SWEEP_PRESETS)}"
                )
            preset = part
            continue
        key, _, value = part.partition("=")
        key = key.strip()
        if key not in OPTIONS:
            raise base.ConfigError(
                f"sweep option {key!r} is unknown; allowed: {', '.join(OPTIONS)}"
            )
        try:
            n = int(value)
        except ValueError:
            n = 0
        if n < 1:
            raise base.ConfigError(f"sweep option {key}={value!r}: expected an integer >= 1")
        opts[key] = n
    return preset, opts


def config(arg: str | None, embedded: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
    """``sweeps.base.get_config`` for the arg's preset, plus ``embedded`` overrides if embedded."""
    preset, _ = parse_arg(arg)
    c = base.get_config(preset)
    if preset == "embedded" and embedded:
        base.apply_overrides(c, embedded)
        base.validate(c)
    return c


def short_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The ``get_config`` of the sweeps whose embedded preset is ``EMBEDDED_SHORT``."""
    return config(arg, embedded=EMBEDDED_SHORT)


def seeded(
    arg: str | None,
    embedded: Sequence[Overrides],
    paper: Callable[[str], Sequence[Overrides]],
    paper_seeds: int = 1,
) -> list[Overrides]:
    """The arg's grid, each point ``seeds`` times (seed the fastest-varying axis): ``embedded``
    for the embedded preset, ``paper(preset)`` for ``paper`` (``paper_seeds`` times unless the
    arg says ``seeds=N``)."""
    preset, _ = parse_arg(arg)
    _, opts = parse_arg(arg, {"seeds": paper_seeds} if preset == "paper" else None)
    points = paper(preset) if preset == "paper" else embedded
    return product(points, seeds(opts["seeds"]))


def axis(key: str, values: Iterable[Any]) -> list[Overrides]:
    """One trial per value of ``key``."""
    return [{key: v} for v in values]


def seeds(n: int) -> list[Overrides]:
    """``n`` seeds per grid point. Seed 0 is the config's default and adds no key, so a trial's
    name and directory stay the same when a sweep grows from 1 to n seeds."""
    return [{}] + [{"seed": s} for s in range(1, n)]


def product(*axes: Sequence[Overrides]) -> list[Overrides]:
    """Every combination of the axes (the first varies slowest), dicts merged left to right."""
    out = []
    for combo in itertools.product(*axes):
        merged: Overrides = {}
        for d in combo:
            merged.update(d)
        out.append(merged)
    return out


def chain(*grids: Sequence[Overrides]) -> list[Overrides]:
    """The grids one after another (e.g. a ResNet grid, then a ViT grid)."""
    return [dict(d) for g in grids for d in g]


def value_text(value: Any) -> str:
    """A value as it appears in a trial name: ``3e-05``, ``0.25``, ``2``, ``B8``."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:g}"
    elif isinstance(value, (list, tuple)):
        text = "-".join(value_text(v) for v in value)
    else:
        text = str(value)
    return re.sub(r"[^A-Za-z0-9.+-]", "", text) or "x"


def key_text(key: str) -> str:
    return ALIASES.get(key, key.rsplit(".", 1)[-1])


def trial_name(overrides: Mapping[str, Any], keys: Iterable[str] | None = None) -> str:
    """``{"train.weight_decay": 3e-5, "seed": 1}`` -> ``wd-3e-05_seed-1``; ``{}`` -> ``default``.

    ``keys`` picks and orders the keys to name by (default: all, in the dict's order)."""
    keys = list(overrides) if keys is None else [k for k in keys if k in overrides]
    parts = [f"{key_text(k)}-{value_text(overrides[k])}" for k in keys]
    return "_".join(parts) or "default"


def model_name(overrides: Mapping[str, Any]) -> str:
    """``resnet-50``, ``vit-B8``, ``efficientnet-b0`` from a trial's model overrides."""
    name = overrides.get("model.name", "resnet")
    if name == "resnet":
        return f"resnet-{overrides.get('model.depth', '')}".rstrip("-")
    return f"{name}-{value_text(overrides.get('model.variant', ''))}"


MODEL_KEYS = ("model.name", "model.depth", "model.variant")


def namer(*keys: str) -> Callable[[Mapping[str, Any]], str]:
    """A ``trial_name`` for sweeps over several models: ``resnet-50_wd-3e-05``, ``vit-B8_wd-0.3``
    (the model prefix only when the trial's overrides pick a model), then ``keys`` and ``seed``."""

    def name(overrides: Mapping[str, Any]) -> str:
        rest = trial_name(overrides, [*keys, "seed"])
        if not any(k in overrides for k in MODEL_KEYS):
            return rest
        return f"{model_name(overrides)}_{rest}" if rest != "default" else model_name(overrides)

    return name


def scaled_warmup(config: ml_collections.ConfigDict, epochs: float) -> float:
    """The config's warmup scaled with a shorter/longer schedule (5 of 90 epochs -> 1 of 18)."""
    return config.train.warmup_epochs * min(1.0, epochs / config.train.epochs)


def study_models(preset: str, vits: Sequence[str] = STUDY_VITS) -> list[Overrides]:
    """The study's five architectures with their recipes: ResNet-6, -50, -200, then the ViTs
    (``vits``: ViT-B/8 and ViT-L/4; the weight-decay sweep leaves out L/4, as the study did)."""
    models = [arch("resnet", preset, depth=d) for d in STUDY_RESNETS]
    return models + [arch("vit", preset, variant=v) for v in vits]


def arch(model: str, preset: str, **model_keys: Any) -> Overrides:
    """Overrides for one out-of-the-box model with its recipe: ``arch("vit", p, variant="B/8")``."""
    out = recipes.recipe(model, preset, str(model_keys.get("variant", "")))
    for k, v in model_keys.items():
        out[f"model.{k}"] = v
    if model == "resnet":
        out.setdefault("model.variant", "")
    return out
