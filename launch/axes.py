"""Sweeps made of axes (``sweeps/study.py``): every distinct trial once, and sweep.json's ``axes``.

A sweep file may define ``get_axes(arg) -> {axis: (key, [(trial name, overrides), ...])}``
in place of ``get_sweep`` and ``trial_name``: each axis's trials, named by the sweep file, with
``key`` the axis's primary dotted key (``model.width``; None when the axis has none, e.g.
``archs``). The launcher builds every trial's config as for any sweep, then keeps one trial per
**resolved config** (``resolved``: the whole flattened config without the ``distributed.*``
placement keys, a ViT's 0 = "the variant's" sizes replaced by the sizes they stand for), named
by the first axis that has it. ``Axes`` remembers which trials each axis holds, shared ones under
every axis, and ``prepare`` writes it to ``<sweep>/sweep.json`` as ``"axes": {axis: {"key": key,
"trials": [names]}}`` (docs/file-contracts.md); the report writes one report per axis from it.
``summary`` is the dry run's per-axis table: trials, distinct trials, and the hours on one H200
of ``launch.cost``.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from sweeps import base

Named = list[tuple[str, dict[str, Any]]]


@dataclass
class Axes:
    """Each axis's primary key and trials (names of kept trials, in the axis's order)."""

    keys: dict[str, str | None]
    trials: dict[str, list[str]]
    sizes: dict[str, int] = field(default_factory=dict)  # trials each axis gave, before merging
    note: str = ""  # the sweep file's NOTE, printed under the dry run's table

    def to_json(self) -> dict[str, dict[str, Any]]:
        return {a: {"key": self.keys[a], "trials": list(self.trials[a])} for a in self.keys}

    def first_axis(self) -> dict[str, str]:
        """trial name -> the first axis that holds it (the one it is counted under)."""
        out: dict[str, str] = {}
        for axis, names in self.trials.items():
            for n in names:
                out.setdefault(n, axis)
        return out


def named_trials(module: ModuleType, arg: str, path: Path) -> tuple[Named, dict[str, Any]]:
    """``get_axes(arg)`` checked: every ``(name, overrides)`` in axis order (an entry repeated
    with the same name and overrides once), and ``{axis: (key, [names])}``."""
    got = module.get_axes(arg)
    where = f"sweep file {str(path)!r}: get_axes({arg!r})"
    if not isinstance(got, Mapping) or not got:
        raise base.ConfigError(
            f"{where} returned {type(got).__name__}; expected a non-empty dict "
            "{axis: (key or None, [(trial name, {dotted.key: value}), ...])}"
        )
    named: Named = []
    seen: dict[str, dict[str, Any]] = {}
    raw: dict[str, Any] = {}
    for axis, entry in got.items():
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2):
            raise base.ConfigError(f"{where}: axis {axis!r} is not a (key, trials) pair")
        key, trials = entry
        if key is not None and not isinstance(key, str):
            raise base.ConfigError(f"{where}: axis {axis!r} key {key!r} is not a string or None")
        ok = isinstance(trials, (list, tuple)) and trials
        if not ok or not all(_is_named(t) for t in trials):
            raise base.ConfigError(
                f"{where}: axis {axis!r} trials are not a non-empty list of (name, dict) pairs"
            )
        for name, o in trials:
            if seen.get(name) != o:
                named.append((name, o))
                seen[name] = o
        raw[str(axis)] = (key, [name for name, _ in trials])
    return named, raw


def _is_named(t: Any) -> bool:
    return (
        isinstance(t, (tuple, list))
        and len(t) == 2
        and isinstance(t[0], str)
        and isinstance(t[1], dict)
    )


def resolved(config: Any) -> str:
    """The config as one comparable text: flattened, placement keys left out, a ViT's sizes
    resolved (``model.depth=0`` of ViT-B/8 is its 12 blocks, as ``trainer.models.vit`` builds)."""
    flat = {
        k: v for k, v in base.normalised(config).items() if not k.startswith(base.PLACEMENT_KEYS)
    }
    if flat.get("model.name") == "vit":
        from trainer.models.common import model_fields  # jax: only for ViTs
        from trainer.models.vit import vit_shape

        shape = vit_shape(model_fields(config["model"]))
        flat.update({f"model.{k}": v for k, v in shape.items()})
    return json.dumps(flat, sort_keys=True)


def merge(trials: Sequence[Any], raw: Mapping[str, Any], note: str = "") -> tuple[list[Any], Axes]:
    """One trial per resolved config (the first), and the axes with each name mapped to the
    trial kept for its config."""
    kept: list[Any] = []
    by_config: dict[str, str] = {}
    rename: dict[str, str] = {}
    for t in trials:
        text = resolved(t.config)
        if text not in by_config:
            by_config[text] = t.name
            kept.append(t)
        rename[t.name] = by_config[text]
    axes = Axes(keys={}, trials={}, note=str(note))
    for axis, (key, names) in raw.items():
        axes.keys[axis] = key
        axes.trials[axis] = list(dict.fromkeys(rename[n] for n in names))
        axes.sizes[axis] = len(names)
    return kept, axes


def summary(trials: Sequence[Any], axes: Axes) -> str:
    """Per axis and in total: trials, distinct trials, those first trained by this axis
    (``new``), and H200-hours of the axis alone and of its new trials (``launch.cost``)."""
    from launch import cost

    hours = {t.name: cost.trial_hours(t.config) for t in trials}
    first = axes.first_axis()
    lines = [_row("axis", "key", "trials", "unique", "new", "H200-h", "new h")]
    per_axis = []
    for axis, names in axes.trials.items():
        new = [n for n in names if first[n] == axis]
        per_axis.append(_sum(hours, names))
        key = axes.keys[axis] or "-"
        size, h_all, h_new = axes.sizes[axis], _sum(hours, names), _sum(hours, new)
        lines.append(_row(axis, key, size, len(names), len(new), _h(h_all), _h(h_new)))
    n, total = len(trials), sum(axes.sizes.values())
    h_axes = None if None in per_axis else sum(per_axis)
    lines.append(_row("total", "", total, n, n, _h(h_axes), _h(_sum(hours, list(hours)))))
    priced = sorted((h, n) for n, h in hours.items() if h is not None)[::-1][:3]
    if priced:
        top = ", ".join(f"{n} {h:,.0f} h" for h, n in priced)
        lines.append(f"costliest trials: {top}")
    notes = cost.summary_notes([t.config for t in trials if hours[t.name] is None])
    notes += [axes.note] if axes.note else []
    return "\n".join(lines + [textwrap.fill(n, 100) for n in notes])


def _row(*cells: Any) -> str:
    axis, key, *numbers = cells
    return f"{axis:<16} {key:<22} " + " ".join(
        f"{c:>{w}}" for c, w in zip(numbers, (6, 6, 5, 9, 9), strict=True)
    )


def _sum(hours: Mapping[str, float | None], names: Sequence[str]) -> float | None:
    values = [hours[n] for n in names]
    return None if any(v is None for v in values) else float(sum(values))


def _h(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f}"
