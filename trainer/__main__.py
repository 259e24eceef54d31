"""``python -m trainer --config=sweeps/<file>.py[:preset] [--config.k=v ...] --workdir=DIR``.

Exit codes: 0 done (or preempted after a clean save: SIGTERM or Ctrl-C), 1 failed (the last
line on stderr says why, as status.json does), 2 bad config / bad input / a workdir that is
busy or cannot be written (nothing started), 3 diverged, 130 a second Ctrl-C.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import Any

from absl import flags
from ml_collections import config_flags

from sweeps import base
from sweeps.command import command_from_argv

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "sweep file and preset, e.g. sweeps/depth.py:paper", lock_config=True
)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "the run's directory (created; resumed if it exists)"
)


def _fail(message: str) -> int:
    print(
        f"error: {message.strip().splitlines()[0] if message.strip() else message}", file=sys.stderr
    )
    return 2


def _one_line(e: BaseException) -> str:
    """The message that names the bad thing, out of a flag error that may wrap a traceback."""
    cause: BaseException | None = e
    innermost = None  # config_flags re-raises a ConfigError wrapped in one of the same type
    while cause is not None:
        if isinstance(cause, base.ConfigError):
            innermost = cause
        cause = cause.__cause__ or cause.__context__
    if innermost is not None:
        return str(innermost)
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    if any(ln.startswith("Traceback") for ln in lines):
        return lines[-1]
    return lines[0] if lines else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    if any(a in ("-h", "--help", "--helpshort", "--helpfull") for a in argv[1:]):
        print(__doc__.strip())
        print(
            "\n  --config=FILE[:PRESET]  a sweep file (sweeps/*.py) and its preset argument"
            "\n  --config.KEY=VALUE      any key of the schema in sweeps/base.py"
            "\n  --workdir=DIR           the run's directory (created; resumed if it exists)"
        )
        return 0
    known = base.flatten(base.get_config())
    for arg in argv[1:]:
        if arg.startswith("--config."):
            key = arg[len("--config.") :].split("=", 1)[0]
            if key not in known:
                return _fail(f"unknown config key {key!r}; see sweeps/base.py for the schema")
        if arg.startswith("--config="):
            path = arg[len("--config=") :].split(":", 1)[0]
            if not os.path.isfile(path):
                return _fail(
                    f"config file {path!r} not found; expected a sweep file like sweeps/smoke.py"
                )
    try:
        rest = flags.FLAGS(argv)
    except Exception as e:  # flag syntax, the config file, its get_config, a value's type
        return _fail(_one_line(e))
    if len(rest) > 1:
        return _fail(
            f"unexpected arguments {rest[1:]}; allowed: --config=..., --config.k=v, --workdir=..."
        )
    if _CONFIG.value is None:
        return _fail("--config is required, e.g. --config=sweeps/smoke.py")
    if not _WORKDIR.value:
        return _fail("--workdir is required, e.g. --workdir=runs/smoke/trial")
    config = _CONFIG.value
    try:
        base.validate(config)
    except base.ConfigError as e:
        return _fail(str(e))

    from trainer.data import DataError
    from trainer.status import WorkdirError

    _quiet_orbax_tracebacks()
    from trainer.train import exit_code, train_and_evaluate

    try:
        state = train_and_evaluate(config, _WORKDIR.value, command=command_from_argv(argv))
    except (base.ConfigError, DataError, WorkdirError) as e:  # bad input: one line, exit 2
        return _fail(str(e))
    except KeyboardInterrupt:  # a second Ctrl-C (the first one saves and stops)
        print("error: interrupted; the run resumes from its last checkpoint", file=sys.stderr)
        return 130
    except Exception as e:
        return _failed(e)
    return exit_code(state)


def _drop_orbax_tracebacks(record: logging.LogRecord) -> bool:
    """False (drop) for a record carrying a traceback that orbax logged or that runs through
    orbax's code (asyncio's "exception was never retrieved" for one of its save tasks)."""
    if not record.exc_info:
        return True
    if "orbax" in record.pathname:
        return False
    tb = record.exc_info[2]
    return not any("orbax" in f.filename for f in traceback.extract_tb(tb)) if tb else True


def _quiet_orbax_tracebacks() -> None:
    """orbax logs every failure of a background save with its traceback, once per thread
    involved, and then raises the same error in the train loop, which reports it in one line:
    drop those log records (keep orbax's other messages), and asyncio's for the save tasks whose
    failure nobody awaited (logged at exit, after the one line: seen on a full disk under load).
    TensorStore's write callbacks that land after orbax closed its event loop report a
    "RuntimeError: Event loop is closed" each through ``sys.unraisablehook`` (a full disk gave
    up to 75 of them): drop those too."""
    for name in ("absl", "asyncio"):
        logging.getLogger(name).addFilter(_drop_orbax_tracebacks)
    hook = sys.unraisablehook

    def quiet(u: Any) -> None:
        if not (isinstance(u.exc_value, RuntimeError) and str(u.exc_value) == _LOOP_CLOSED):
            hook(u)

    sys.unraisablehook = quiet


_LOOP_CLOSED = "Event loop is closed"


def _failed(e: Exception) -> int:
    """A run that failed after it started (status.json says ``failed`` with the same line): the
    traceback for what looks like a bug, none for the machine's own errors (a full disk, a
    file that cannot be written), and the one line last either way."""
    from trainer.status import error_line, os_error_code

    if os_error_code(e) is None:
        traceback.print_exception(e)
    print(f"error: {error_line(e)}", file=sys.stderr, flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main())
