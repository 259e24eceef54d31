"""The trial model every launcher (local, Slurm, TPU) shares.

A sweep is a sweep file (``sweeps/<name>.py`` or any path to a ``.py`` file) with a config arg
(``"embedded"``, ``"paper,seeds=3"``). Its ``get_sweep(arg)`` gives one override dict per trial
(or ``get_axes(arg)`` named trials per axis, each resolved config kept once: ``launch.axes``);
``load_trials`` turns each into a ``Trial``: a stable name, the overrides (the sweep's, then the
command line's ``--config.k=v``), the full validated config and the run directory
``<runs_dir>/<sweep>/<name>``. Every trial is built and validated before anything is written.

The only state a launcher keeps is in the run directories (docs/file-contracts.md):

* ``prepare(trials)`` writes ``<sweep>/sweep.json`` and, per trial, ``config.json``,
  ``overrides.json`` and a ``pending`` ``status.json`` when there is none. A trial directory whose
  ``config.json`` differs from the trial's config is refused (``DriftError``, listing the trial and
  the differing keys): results are never mixed across configs.
* The trainer owns ``status.json`` from then on (running, done, failed, diverged, preempted).
* ``todo(trials)`` is what is left to run: pending, failed, preempted, and running trials whose
  process is gone (a pid that is not alive on this host). ``done`` and ``diverged`` are results.
* ``Trial.command()`` is the exact trainer argv; rerunning it by hand resumes the trial.

A launcher is a module ``launch.<name>`` with ``launch(trials, options) -> exit code`` where
``options`` is a ``LaunchOptions``; ``launch.local`` is the reference.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shlex
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import ml_collections

from launch import axes
from launch.axes import Axes
from launch.procs import is_dead
from sweeps import base, grid
from sweeps.command import get, trainer_argv
from trainer import files
from trainer.status import now_iso

SWEEPS_DIR = Path(__file__).resolve().parent.parent / "sweeps"
NOT_SWEEPS = ("__init__", "base", "command", "grid")  # modules of sweeps/ that are not sweeps
DONE_STATES = ("done", "diverged")  # results: never rerun
TODO_STATES = ("pending", "failed", "preempted")  # rerun (the trainer resumes from checkpoints)


class DriftError(base.ConfigError):
    """Existing trial directories hold another config than the sweep now gives them."""


@dataclass
class LaunchOptions:
    """What every launcher gets besides the trials (all set by ``python -m launch``)."""

    jobs: int = 1  # trials at once
    trials_per_device: int = 1  # trials sharing one accelerator (launch/packing.py), resolved
    python: str = sys.executable
    no_eval: bool = False  # skip the evaluator and the report after training
    launcher_opts: dict[str, str] = field(default_factory=dict)  # --launcher-opt KEY=VALUE


@dataclass
class Trial:
    """One trial of a sweep: a sweep file, a config arg and overrides, and a run directory."""

    sweep: str  # sweep name: the sweep file's stem, and the directory under the runs dir
    name: str  # stable, filesystem-safe, from the overrides: depth-50, wd-3e-05_seed-1
    overrides: dict[str, Any]  # {dotted.key: value}, typed as in the schema
    workdir: Path  # <runs_dir>/<sweep>/<name>
    config: ml_collections.ConfigDict  # the sweep file's get_config(arg) plus overrides
    preset: str  # the preset part of the arg: embedded | paper
    sweep_file: Path  # the sweep file, as given or resolved under sweeps/
    arg: str = ""  # the whole config arg passed to get_config ("paper,seeds=3"); '' = preset
    axes: Axes | None = None  # a sweep of axes (get_axes): every axis's trials, for sweep.json

    @property
    def config_arg(self) -> str:
        return self.arg or self.preset

    def command(self, python: str | None = None) -> list[str]:
        """The trainer's argv: ``python -m trainer --config=<file>:<arg> --config.k=v ...
        --workdir=<dir>``. Each override is one argv element, so values with spaces or quotes
        arrive intact; ``shlex.join`` of this list is the same command for a shell."""
        return trainer_argv(
            _display_path(self.sweep_file),
            self.config_arg,
            self.overrides,
            self.workdir,
            python or sys.executable,
        )

    def command_text(self, python: str | None = None) -> str:
        return shlex.join(self.command(python))

    @property
    def status_path(self) -> Path:
        return self.workdir / "status.json"

    @property
    def log_path(self) -> Path:
        return self.workdir / "train.log"

    def status(self) -> dict[str, Any]:
        """The trial's status.json; ``{"state": "new"}`` before ``prepare``, ``{"state":
        "unreadable"}`` for a file that does not parse."""
        try:
            st = files.read_json(self.status_path, default=None)
        except (json.JSONDecodeError, OSError):
            return {"state": "unreadable"}
        return st if isinstance(st, dict) else {"state": "new"}

    def write_status(self, **fields: Any) -> dict[str, Any]:
        """Update status.json with ``fields`` (atomic); returns the new status."""
        st = self.status()
        if st.get("state") in ("new", "unreadable"):
            st = {}
        st.update(fields, updated=now_iso())
        files.atomic_write_json(self.status_path, st)
        return st


# ----------------------------------------------------------------------------- loading


def available_sweeps() -> list[str]:
    return sorted(
        p.stem
        for p in SWEEPS_DIR.glob("*.py")
        if p.stem not in NOT_SWEEPS and not p.stem.startswith("_")
    )


def sweep_path(sweep: str) -> Path:
    """``depth`` -> sweeps/depth.py; a path to a .py file is taken as is."""
    if sweep.endswith(".py") or os.sep in sweep:
        p = Path(sweep)
        if not p.is_file():
            raise base.ConfigError(f"sweep file {sweep!r} does not exist")
        return p
    if sweep not in available_sweeps():
        raise base.ConfigError(
            f"sweep {sweep!r} is unknown; available: {', '.join(available_sweeps())} "
            "(or a path to a sweep .py file)"
        )
    return SWEEPS_DIR / f"{sweep}.py"


def load_sweep_module(path: Path, needs: Sequence[str] = ("get_config", "get_sweep")) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_sweep_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise base.ConfigError(f"sweep file {str(path)!r} cannot be imported")
    module = importlib.util.module_from_spec(spec)
    try:  # a sweep file is Python, run as code: its own errors name the file and line
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise base.ConfigError(
            f"sweep file {str(path)!r} line {e.lineno}: SyntaxError: {e.msg}"
        ) from None
    except Exception as e:
        raise base.ConfigError(f"sweep file {str(path)!r}: {_where(e, path)}") from None
    for fn in needs:
        # a sweep of axes (``study``) lists its trials with get_axes instead of get_sweep
        alt = ("get_axes",) if fn == "get_sweep" else ()
        if not any(callable(getattr(module, f, None)) for f in (fn, *alt)):
            raise base.ConfigError(f"sweep file {str(path)!r} has no {fn}(arg) function")
    return module


def load_trials(
    sweep: str,
    preset: str | None = None,
    extra_overrides: Mapping[str, Any] | None = None,
    runs_dir: str | os.PathLike = "runs",
) -> list[Trial]:
    """Every trial of ``sweep`` with config arg ``preset`` (``"paper,seeds=3"``; default
    ``embedded``), each config built and validated before this returns (ConfigError, one line,
    naming the trial). ``extra_overrides`` apply to every trial and may not touch a swept key."""
    path = sweep_path(sweep)
    module = load_sweep_module(path)
    arg = preset or "embedded"
    preset_name, _ = grid.parse_arg(arg)
    extra = dict(extra_overrides or {})
    config0 = _call(module.get_config, arg, path)
    if not isinstance(config0, ml_collections.ConfigDict):
        raise base.ConfigError(
            f"sweep file {str(path)!r}: get_config({arg!r}) returned "
            f"{type(config0).__name__}; expected a ConfigDict (sweeps.base.get_config)"
        )
    base.validate(config0)
    named, raw_axes = _named_overrides(module, arg, path)
    swept = sorted({k for _, o in named for k in o} & set(extra))
    if swept:
        raise base.ConfigError(
            f"--config.{swept[0]} is swept by {path.stem!r}; it cannot be set for the whole sweep"
        )
    trials, seen = [], {}
    for name, o in named:
        if name in seen:
            raise base.ConfigError(
                f"sweep {path.stem!r}: two trials are both named {name!r} ({seen[name]} and {o})"
            )
        seen[name] = o
        config = ml_collections.ConfigDict(config0.to_dict())
        merged = {**o, **extra}
        try:
            base.apply_overrides(config, merged)
            base.validate(config)
        except base.ConfigError as e:
            raise base.ConfigError(f"trial {name!r}: {e}") from None
        typed = {k: get(config, k) for k in merged}
        trials.append(
            Trial(
                sweep=path.stem,
                name=name,
                overrides=typed,
                workdir=Path(runs_dir) / path.stem / name,
                config=config,
                preset=preset_name,
                sweep_file=path,
                arg=arg,
            )
        )
    if raw_axes is not None:  # one trial per resolved config; each axis keeps its list
        trials, sweep_axes = axes.merge(trials, raw_axes, getattr(module, "NOTE", ""))
        for t in trials:
            t.axes = sweep_axes
    return trials


def _named_overrides(
    module: ModuleType, arg: str, path: Path
) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any] | None]:
    """``[(trial name, overrides)]`` from ``get_axes`` (with its raw axes) or from ``get_sweep``
    and ``trial_name`` (axes None); a bad shape raises one line naming the sweep file."""
    if callable(getattr(module, "get_axes", None)):
        return _call(lambda a: axes.named_trials(module, a, path), arg, path, "get_axes")
    grid_overrides = _call(module.get_sweep, arg, path)
    if not isinstance(grid_overrides, (list, tuple)) or not all(
        isinstance(o, dict) for o in grid_overrides
    ):
        raise base.ConfigError(
            f"sweep file {str(path)!r}: get_sweep({arg!r}) returned {_shape(grid_overrides)}; "
            "expected a list of {dotted.key: value} dicts, one per trial"
        )
    if not grid_overrides:
        raise base.ConfigError(f"sweep {path.stem!r} ({arg}) has no trials")
    namer = getattr(module, "trial_name", None) or grid.trial_name
    return [(namer(o), o) for o in grid_overrides], None


def load_trial(
    sweep: str, arg: str | None, overrides: Mapping[str, Any], workdir: str | os.PathLike
) -> Trial:
    """The one trial a trainer command describes (``--config=<sweep>:<arg> --config.k=v ...
    --workdir=<dir>``): the sweep file's ``get_config(arg)`` plus ``overrides``, in ``workdir``
    (its folder the sweep directory); ``get_sweep`` is not asked, so any config file works."""
    path = sweep_path(sweep)
    module = load_sweep_module(path, needs=("get_config",))
    arg = arg or "embedded"
    config = _call(module.get_config, arg, path)
    if not isinstance(config, ml_collections.ConfigDict):
        raise base.ConfigError(f"config file {str(path)!r}: get_config({arg!r}) is no ConfigDict")
    config = ml_collections.ConfigDict(config.to_dict())
    base.apply_overrides(config, dict(overrides))
    base.validate(config)
    wd = Path(workdir)
    return Trial(
        sweep=wd.absolute().parent.name,
        name=wd.absolute().name,
        overrides={k: get(config, k) for k in overrides},
        workdir=wd,
        config=config,
        preset=grid.parse_arg(arg)[0],
        sweep_file=path,
        arg=arg,
    )


def _where(e: BaseException, path: Path) -> str:
    """``line N: Type: message`` of an exception raised by code in the sweep file ``path``."""
    import traceback

    frames = [f for f in traceback.extract_tb(e.__traceback__) if Path(f.filename) == path]
    line = f"line {frames[-1].lineno}: " if frames else ""
    text = " ".join(str(e).split())[:300]
    return f"{line}{type(e).__name__}: {text}" if text else f"{line}{type(e).__name__}"


def _call(fn: Any, arg: str, path: Path, fn_name: str = "") -> Any:
    """``fn(arg)`` of the sweep file; its errors become one ``ConfigError`` naming the file."""
    try:
        return fn(arg)
    except base.ConfigError:
        raise
    except Exception as e:
        raise base.ConfigError(
            f"sweep file {str(path)!r}: {fn_name or fn.__name__}({arg!r}) failed at "
            f"{_where(e, path)}"
        ) from None


def _shape(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        bad = next((o for o in value if not isinstance(o, dict)), None)
        return f"a list holding a {type(bad).__name__}" if bad is not None else "a list"
    return type(value).__name__ if value is not None else "None"


# ----------------------------------------------------------------------------- run directories


def drift(trial: Trial) -> list[str]:
    """``key: old -> new`` where the trial's existing config.json differs (``sweeps.base.
    config_drift``); [] when there is none or it is the same."""
    try:
        old = files.read_json(trial.workdir / "config.json", default=None)
    except json.JSONDecodeError:
        return ["config.json: unreadable"]
    return [] if old is None else base.config_drift(old, trial.config)


def check_drift(trials: Sequence[Trial]) -> None:
    """Raise DriftError (one line) naming every trial whose directory holds another config."""
    bad = [f"{t.name} ({base.drift_text(d)})" for t in trials if (d := drift(t))]
    if bad:
        sweep_dir = trials[0].workdir.parent
        raise DriftError(
            f"{sweep_dir} already holds trials with another config: {'; '.join(bad)}; "
            "use a new --runs-dir or delete those trial directories"
        )


def prepare(trials: Sequence[Trial], python: str | None = None, sweep_record: bool = True) -> None:
    """Check drift for all trials, then write sweep.json (unless not ``sweep_record``: one trial
    run on its own leaves its sweep's record alone) and each trial's config.json,
    overrides.json and (if it has none) a pending status.json, all atomically."""
    if not trials:
        return
    check_drift(trials)
    t0 = trials[0]
    if sweep_record:
        files.atomic_write_json(
            t0.workdir.parent / "sweep.json",
            {
                "sweep": t0.sweep,
                "sweep_file": str(t0.sweep_file),
                "preset": t0.preset,
                "arg": t0.config_arg,
                "trials": [t.name for t in trials],
                **({"axes": t0.axes.to_json()} if t0.axes else {}),
                "updated": now_iso(),
            },
        )
    for t in trials:
        if not (t.workdir / "config.json").exists():
            files.atomic_write_json(t.workdir / "config.json", t.config.to_dict())
        files.atomic_write_json(t.workdir / "overrides.json", t.overrides)
        if t.status().get("state") in ("new", "unreadable"):
            t.write_status(state="pending", command=t.command_text(python), error=None)


def todo(trials: Iterable[Trial]) -> list[Trial]:
    """The trials to run: pending, failed, preempted, unprepared, and running-but-dead."""
    out = []
    for t in trials:
        st = t.status()
        state = st.get("state")
        if state in DONE_STATES:
            continue
        if state == "running" and not is_dead(st):
            continue
        out.append(t)
    return out


def _display_path(p: Path) -> str:
    """``p`` relative to the working directory when it lies under it (``sweeps/depth.py``)."""
    try:
        return str(p.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(p.resolve())
