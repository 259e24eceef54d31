"""The trainer's command line: ``python -m trainer --config=<file>:<arg> --config.k=v ...
--workdir=DIR``, built and parsed here for the trainer, the launchers and status.json alike.

``trainer_argv`` writes it (each override one argv element, rendered so ml-collections'
``config_flags`` parses it back to the same value). ``parse_config_args`` reads a command line
with ``config_flags`` itself, so every tool takes what the trainer takes: ``--config=FILE[:ARG]``
or ``--config FILE[:ARG]``, ``--config.k=v``, ``--config.k v``, ``--config.flag`` /
``--noconfig.flag`` for booleans, a tuple as ``--config.k='(1, 2)'``; values typed by the schema.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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


_SPEC = re.compile(r"^--?config(=(?P<value>.*))?$")  # --config=FILE[:ARG] / --config FILE[:ARG]
_OVERRIDE = re.compile(r"^--?(no)?config\.(?P<key>[^=]+)")


@dataclass
class ConfigArgs:
    """A command line read as the trainer reads it: the config file spec, the overrides (typed
    by the schema, in command-line order) and every other argument, in order."""

    spec: str | None = None  # FILE[:ARG] of --config, None when not given
    overrides: dict[str, Any] = field(default_factory=dict)
    rest: list[str] = field(default_factory=list)

    @property
    def file(self) -> str | None:
        return None if self.spec is None else self.spec.split(":", 1)[0]

    @property
    def arg(self) -> str | None:
        return None if self.spec is None or ":" not in self.spec else self.spec.split(":", 1)[1]


def parse_config_args(argv: Sequence[str]) -> ConfigArgs:
    """Read ``--config`` and its overrides out of ``argv`` (no program name) with ml-collections'
    ``config_flags`` over the schema (sweeps/base.py), the trainer's own parser; the other
    arguments are returned untouched. Unknown keys and bad values: one-line ``ConfigError``."""
    from absl import flags
    from ml_collections import config_flags

    out, args, i = ConfigArgs(), [], 0
    while i < len(argv):
        m = _SPEC.match(argv[i])
        if m is None:
            args.append(argv[i])
        elif m.group("value") is not None:
            out.spec = m.group("value")
        elif i + 1 < len(argv):
            out.spec, i = argv[i + 1], i + 1
        else:
            raise base.ConfigError(
                "--config needs a value: a sweep file, e.g. sweeps/depth.py:paper"
            )
        i += 1
    schema = base.flatten(base.get_config())
    for a in args:
        m = _OVERRIDE.match(a)
        if m and m.group("key") not in schema:
            raise base.ConfigError(
                f"unknown config key {m.group('key')!r} in {a!r}; see sweeps/base.py"
            )
    fv = flags.FlagValues()
    prog = ["prog", *args]
    config_flags.DEFINE_config_dict("config", base.get_config(), flag_values=fv, sys_argv=prog)
    try:
        out.rest = fv(prog, known_only=True)[1:]
    except flags.Error as e:
        raise base.ConfigError(" ".join(str(e).split())) from None
    config = base.get_config()
    for key, value in config_flags.get_override_values(fv["config"]).items():
        base.apply_overrides(config, {key: value})  # one-line error for a wrong type
        out.overrides[key] = get(config, key)
    return out


def parse_overrides(args: Iterable[str]) -> dict[str, Any]:
    """``["--config.train.epochs=3", ...]`` -> ``{"train.epochs": 3.0}`` (``parse_config_args``);
    anything but overrides raises a one-line ConfigError."""
    parsed = parse_config_args(list(args))
    bad = parsed.rest[:1] or ([f"--config={parsed.spec}"] if parsed.spec is not None else [])
    if bad:
        raise base.ConfigError(
            f"argument {bad[0]!r} is not allowed; expected --config.<key>=<value>"
        )
    return parsed.overrides


def get(config: Any, key: str) -> Any:
    """The value at a dotted key of a ConfigDict (or nested dict)."""
    node: Any = config
    for part in key.split("."):
        node = node[part]
    return node
