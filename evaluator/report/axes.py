"""Which swept value goes on a sweep's x-axis, and which trials share a line.

A sweep may chain grids over several models, each with its own recipe (ResNet-50 and ViT-B/8
over weight decay; ResNet dropout and ViT encoder dropout), so the keys that differ between
trials are more than the one hyperparameter studied. The plan:

* the sweep's **primary key**: ``sweep.json``'s one non-seed axis key; else the swept key named
  like the sweep (``weight_decay`` -> ``train.weight_decay``); else the only swept key;
* **groups**: trials of one model (name, variant, and depth/width unless they are the primary
  key); each group is one line;
* each group's **x key**: the primary key when it varies inside the group, else the key that
  varies most inside it (ViT's ``model.encoder_dropout`` in a dropout sweep), else none;
* groups with no x key (an architecture sweep: one trial per model) become one categorical
  series, one position per model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from evaluator.report.collect import FROM_SWEEP_JSON, MODEL_KEYS, Sweep, TrialResults

IDENTITY = tuple(f"model.{k}" for k in MODEL_KEYS)  # the keys that tell models apart


@dataclass
class Group:
    label: str  # the model ("resnet-50"), or "" when the sweep trains one model
    key: str | None  # the x key inside this group
    trials: list[TrialResults] = field(default_factory=list)


@dataclass
class AxisPlan:
    primary: str | None
    groups: list[Group]

    @property
    def keys(self) -> list[str]:
        """Every x key in use, the primary first (the trial table shows these)."""
        out = (
            [self.primary]
            if self.primary and any(g.key == self.primary for g in self.groups)
            else []
        )
        for g in self.groups:
            if g.key and g.key not in out:
                out.append(g.key)
        return out

    def group_of(self, trial_key: str) -> Group | None:
        for g in self.groups:
            if any(t.key == trial_key for t in g.trials):
                return g
        return None

    @property
    def categorical(self) -> bool:
        return not any(g.key for g in self.groups)


def _text(v: Any) -> str:
    return json.dumps(v, sort_keys=True, default=str)


def _varying(trials: list[TrialResults], keys: list[str]) -> list[str]:
    return [k for k in keys if len({_text(t.value(k)) for t in trials}) > 1]


def primary_key(sw: Sweep) -> str | None:
    if sw.primary:
        return sw.primary
    keys = [k for k in sw.swept if k != "seed"]
    if sw.swept_from == FROM_SWEEP_JSON and len(keys) == 1:
        return keys[0]
    name = sw.name.lower().replace("-", "_")
    for k in keys:
        if k.rsplit(".", 1)[-1].lower() == name:
            return k
    for k in keys:  # "dropout" names model.dropout before model.encoder_dropout
        if name and k.rsplit(".", 1)[-1].lower().endswith(name):
            return k
    return keys[0] if len(keys) == 1 else None


def model_label(t: TrialResults, varying: list[str], primary: str | None = None) -> str:
    """``resnet-50``, ``vit-B/8`` (``vit-Ti/4 depth 4`` when ViT depths differ),
    ``efficientnet-b0``; the width multiplier added when it varies; ``resnet`` when the depth
    is the x-axis (the depth sweep: one line through every ResNet)."""
    name = t.value("model.name") or "model"
    variant = t.value("model.variant")
    if name == "resnet" and primary == "model.depth":
        label = name
    elif name == "resnet" or not variant:
        label = f"{name}-{t.value('model.depth')}"
    else:
        label = f"{name}-{variant}"
        if name == "vit" and "model.depth" in varying and t.value("model.depth"):
            label += f" depth {t.value('model.depth')}"
    if "model.width" in varying:
        label += (
            f" x{t.value('model.width'):g}"
            if isinstance(t.value("model.width"), (int, float))
            else ""
        )
    return label


def row_arch(row: dict[str, Any]) -> str:
    """A results row's architecture: ``resnet-50``, ``vit-B/8``, ``efficientnet-b0``."""
    name = row.get("model_name") or "model"
    if name == "resnet" or not row.get("model_variant"):
        return f"{name}-{row.get('model_depth')}"
    return f"{name}-{row['model_variant']}"


def plan(sw: Sweep) -> AxisPlan:
    trials = [t for t in sw.trials if t.exists]
    swept = [k for k in sw.swept if k != "seed"]
    primary = primary_key(sw)
    ident = [k for k in IDENTITY if k != primary]
    ident_varying = _varying(trials, ident)
    groups: dict[str, Group] = {}
    for t in trials:
        label = model_label(t, ident_varying, primary) if ident_varying else ""
        groups.setdefault(label, Group(label, None)).trials.append(t)
    for g in groups.values():
        inside = _varying(g.trials, [k for k in swept if k not in ident])
        if primary in inside:
            g.key = primary
        elif inside:
            g.key = max(inside, key=lambda k: len({_text(t.value(k)) for t in g.trials}))
    return AxisPlan(primary, list(groups.values()))
