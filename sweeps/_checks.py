"""The building blocks of the schema's value checks (``sweeps.base._CHECKS``).

A check is ``(ok(value) -> bool, allowed() -> str)``; ``allowed`` is the text a ConfigError shows.
The allowed values of a key that names code (a model, a dtype, a dataset, a benchmark, a
distance) are owned by that code and asked for lazily, since the model zoo, the data layer and
the evaluator import ``sweeps.base`` themselves. (The leading underscore keeps this module out of
the launcher's list of sweeps.)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

Check = tuple[Callable[[Any], bool], Callable[[], str]]


def model_names() -> tuple[str, ...]:
    from trainer.models import MODEL_NAMES

    return MODEL_NAMES


def dtypes() -> tuple[str, ...]:
    from trainer.models import DTYPES

    return DTYPES


def benchmarks() -> tuple[str, ...]:
    from evaluator.benchmarks import BENCHMARK_NAMES

    return BENCHMARK_NAMES


def resolutions() -> tuple[str, ...]:
    from evaluator.imagesets import RESOLUTIONS

    return RESOLUTIONS


def convolutional() -> tuple[str, ...]:
    from evaluator.imagesets import FULLY_CONVOLUTIONAL

    return FULLY_CONVOLUTIONAL


def distances() -> tuple[str, ...]:
    from evaluator.distances import FEATURE_DISTANCES

    return FEATURE_DISTANCES


def one_of(allowed: Iterable[Any] | Callable[[], Iterable[Any]]) -> Check:
    get = allowed if callable(allowed) else (lambda a=tuple(allowed): a)
    return (lambda v: v in tuple(get())), lambda: "one of " + ", ".join(map(str, get()))


def comma_list(get: Callable[[], Iterable[str]], note: str = "") -> Check:
    return (
        lambda v: bool(v) and all(x in tuple(get()) for x in v.split(",")),
        lambda: "a comma list of " + ", ".join(get()) + note,
    )


def dataset() -> Check:
    def ok(v: str) -> bool:
        from trainer.data import known_dataset

        return known_dataset(v)

    def allowed() -> str:
        from trainer.data import DATASETS

        return "one of " + ", ".join(DATASETS)

    return ok, allowed


def is_(ok: Callable[[Any], bool], text: str) -> Check:
    return ok, lambda: text


def in_range(lo: float, hi: float, lo_open: bool = False, hi_open: bool = True) -> Check:
    def ok(v: Any) -> bool:
        if not math.isfinite(v):
            return False
        return (v > lo if lo_open else v >= lo) and (v < hi if hi_open else v <= hi)

    text = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return is_(ok, "a number in " + text)


INT_POS = is_(lambda v: v >= 1, "an integer >= 1")
INT_NONNEG = is_(lambda v: v >= 0, "an integer >= 0")
FRAC = in_range(0.0, 1.0)
