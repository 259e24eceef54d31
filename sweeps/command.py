"""The trainer's command line: ``python -m trainer --config=<file>:<arg> --config.k=v ...
--workdir=DIR``, built and parsed here for the trainer, the launchers and status.json alike.

``trainer_argv`` writes it (each override one argv element, rendered so ml-collections'
``config_flags`` parses it back to the same value); ``parse_overrides`` reads ``--config.k=v``
arguments the same way, typed by the schema.
"""

from __future__ import annotations

import ast
import os
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sweeps import base
from sweeps.recipes import PRESETS


def render_value(value: Any) -> str:
    """A schema value as ml-collections' config_flags parses it back (``--config.k=<this>``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return repr(tuple(value))
    return str(value)


def trainer_argv(
    config_file: str,
    arg: str,
    overrides: Mapping[str, Any],
    workdir: str | os.PathLike,
    python: str = "python",
) -> list[str]:
    """``[python, -m, trainer, --config=<file>:<arg>, --config.k=v ..., --workdir=<dir>]``;
    ``shlex.join`` of it is the same command for a shell."""
    argv = [python, "-m", "trainer", f"--config={config_file}:{arg}"]
    argv += [f"--config.{k}={render_value(v)}" for k, v in overrides.items()]
    argv.append(f"--workdir={workdir}")
    return argv


def command_from_argv(argv: Sequence[str]) -> str:
    """The command that reruns this trainer invocation (``python -m trainer`` + its flags)."""
    return shlex.join(["python", "-m", "trainer", *argv[1:]])


def command_from_config(config: Any, workdir: str | os.PathLike) -> str:
    """A command line that rebuilds ``config`` from ``sweeps/base.py``: the closest preset plus
    ``--config.key=value`` for every key that differs from it."""
    flat = base.normalised(config)
    best: tuple[int, str, dict[str, Any]] | None = None
    for preset in PRESETS:
        ref = base.normalised(base.get_config(preset))
        diff = {k: v for k, v in flat.items() if v != ref.get(k)}
        if best is None or len(diff) < best[0]:
            best = (len(diff), preset, diff)
    assert best is not None
    _, preset, diff = best
    return shlex.join(trainer_argv("sweeps/base.py", preset, diff, workdir))


def parse_overrides(args: Iterable[str]) -> dict[str, Any]:
    """``["--config.train.epochs=3", ...]`` -> ``{"train.epochs": 3.0}``, typed by the schema.

    A string key takes the text as is; other keys parse it as a Python literal (``true``/``false``
    for booleans). Unknown keys and wrong types raise a one-line ConfigError."""
    config = base.get_config()
    schema = base.flatten(config)
    out: dict[str, Any] = {}
    for a in args:
        if not a.startswith("--config.") or "=" not in a:
            raise base.ConfigError(
                f"argument {a!r} is not allowed; expected --config.<key>=<value>"
            )
        key, _, text = a[len("--config.") :].partition("=")
        if key not in schema:
            raise base.ConfigError(f"unknown config key {key!r} in {a!r}; see sweeps/base.py")
        old = schema[key]
        value: Any = text
        if not isinstance(old, (str, bool)):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                pass
        base.apply_overrides(config, {key: value})  # one-line error for a wrong type
        out[key] = get(config, key)
    return out


def get(config: Any, key: str) -> Any:
    """The value at a dotted key of a ConfigDict (or nested dict)."""
    node: Any = config
    for part in key.split("."):
        node = node[part]
    return node
