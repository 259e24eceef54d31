"""``python -m evaluator import``: TensorFlow checkpoints of tensorflow/tpu's ResNet (the study's
released runs) as an ordinary trial directory, scored and reported like any other trial.

    python -m evaluator import --tf-checkpoints=DIR --runs=runs/released --config.model.depth=6
                               [--name=resnet-6] [--steps=1000,5000] [--config.k=v ...]
    python -m evaluator import --tf-checkpoints=DIR --list [--config.model.depth=6]

``DIR`` holds ``<name>-<step>.index`` / ``.data-*`` files (``model.ckpt-1000.index``, ...).
The mapping and its assumptions are ``trainer.models.resnet_tf``'s. Writes
``<runs>/<name>/``: ``config.json`` (the ``paper`` preset with the model asked for and
``data.num_classes`` from ``dense/kernel``; the recipe's ``data.*`` = the trainer's ImageNet
mean/std normalisation, which is tensorflow/tpu's), ``overrides.json``, ``status.json`` (``done``,
its ``command`` reruns the import), ``import.json`` (where it came from), ``metrics.jsonl`` (one
``import`` line per step: its epoch at ``train.batch_size`` images a step) and one orbax
checkpoint per TF step (``trainer.checkpoint.save_variables``). ``--list`` prints a
checkpoint's variables and what each becomes, and writes nothing.

All or nothing: every checkpoint's variable list is checked first (index files only), then the
steps are converted into a staging directory, ``<runs>/.imports/<name>.<pid>`` (two levels
down, so no reader of ``<runs>/*/config.json`` takes it for a trial), moved into place once all
are written; any error removes it and prints one line (exit 2). Run again, it imports only the
steps the trial does not hold yet (a download that grew); a trial of another config or origin
is refused.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from sweeps import base
from trainer.files import atomic_write_json, atomic_write_text, read_json

IMPORT_JSON = "import.json"
STAGING = ".imports"


class ImportArgError(ValueError):
    """Bad arguments or a target the import must not touch (one line)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m evaluator import",
        description="Import TF checkpoints of tensorflow/tpu's ResNet as a trial directory.",
        epilog="Any --config.<key>=<value> sets the trial's config (--config.model.depth is "
        "required); defaults: the paper preset.",
    )
    p.add_argument("--tf-checkpoints", required=True, help="directory of <name>-<step>.index")
    p.add_argument("--runs", help="the sweep directory to write the trial into (runs/released)")
    p.add_argument("--name", help="trial name (default resnet-<depth>)")
    p.add_argument("--steps", help="comma list of steps to import (default: every one found)")
    p.add_argument("--list", action="store_true", help="print the variables, write nothing")
    return p


def _steps(found: dict[int, str], arg: str | None) -> list[int]:
    if not arg:
        return sorted(found)
    try:
        asked = sorted({int(s) for s in arg.split(",") if s.strip()})
    except ValueError:
        raise ImportArgError(f"--steps={arg!r} is not a comma list of integers") from None
    missing = [s for s in asked if s not in found]
    if missing or not asked:
        raise ImportArgError(
            f"--steps={arg!r}: step(s) {missing or '(none)'} not found; found {sorted(found)}"
        )
    return asked


def _config(overrides: dict[str, Any], num_classes: int | None = None) -> Any:
    """The trial's config: the paper preset, ``overrides`` and ``data.num_classes``."""
    if "model.depth" not in overrides:
        raise ImportArgError(
            "--config.model.depth is required: the depth of the imported ResNet (6, 50, 200, ...)"
        )
    extra = {} if num_classes is None else {"data.num_classes": num_classes}
    cfg = base.config_from("paper", {**overrides, **extra})
    if cfg.model.name != "resnet":
        raise ImportArgError(f"--config.model.name={cfg.model.name!r}: only resnet is imported")
    return cfg


def _overrides_json(cfg: Any) -> dict[str, Any]:
    """What differs from the paper preset, and always the depth (the report's axis)."""
    flat, paper = base.flatten(cfg.to_dict()), base.flatten(base.get_config("paper").to_dict())
    diff = {k: v for k, v in flat.items() if paper.get(k) != v and not k.startswith("distributed.")}
    return {"model.depth": cfg.model.depth, **diff}


def _trial_name(cfg: Any) -> str:
    name = f"resnet-{cfg.model.depth}"
    return name if cfg.model.width == 1.0 else f"{name}_width-{cfg.model.width:g}"


def _command(args: argparse.Namespace, overrides: dict[str, Any], name: str) -> str:
    from sweeps.command import render_value

    argv = ["python", "-m", "evaluator", "import"]
    argv += [f"--tf-checkpoints={Path(args.tf_checkpoints).absolute()}", f"--runs={args.runs}"]
    argv += [f"--name={name}"] + ([f"--steps={args.steps}"] if args.steps else [])
    argv += [f"--config.{k}={render_value(v)}" for k, v in sorted(overrides.items())]
    return shlex.join(argv)


def _epoch(cfg: Any, step: int) -> float:
    # The released runs' data are ImageNet's train split at the recipe's batch (assumed 1024).
    from trainer.data.imagenet64 import TRAIN_EXAMPLES

    return round(step * cfg.train.batch_size / TRAIN_EXAMPLES, 4)


# ----------------------------------------------------------------------------- --list


def _natural(name: str) -> list:
    """``conv2d_2`` before ``conv2d_10``: the order the layers were created in."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", name)]


def list_checkpoint(ckpt: str, model_cfg: dict[str, Any] | None) -> int:
    """Print every variable of ``ckpt`` with its role; with ``model_cfg``, check the mapping."""
    from trainer.models import resnet_tf as rt

    shapes = rt.list_variables(ckpt)
    c = rt.classify(shapes)
    targets: dict[str, str] = {}
    error, classes = None, None
    if model_cfg is not None:
        try:
            p = rt.plan(shapes, model_cfg)
            targets = {n: f"{coll}/{'/'.join(keys)}" for n, coll, keys, _ in p.entries}
            classes = p.num_classes
        except rt.TFCheckpointError as e:
            error = str(e)
    model = set(c["model"].values())
    width = max(len(n) for n in shapes)
    print(f"{ckpt}: {len(shapes)} variables")
    first = list(targets)  # with a depth: the layers in the order the TF code created them
    for name in first + sorted(set(shapes) - set(targets), key=_natural):
        shape = shapes[name]
        if name in model:
            role = targets.get(name, "model variable")
        elif name == c["step"]:
            role = "the step"
        elif name in c["slots"]:
            role = "skipped (under a model variable: optimiser slot or EMA)"
        else:
            role = "ignored (not a tf.layers ResNet variable)"
        print(f"  {name:<{width}s}  {str(list(shape)):<18s} {role}")
    convs = sum(1 for k in c["model"] if k.startswith("conv2d") and k.endswith("/kernel"))
    fits = ", ".join(map(str, rt.depths_with(convs))) or "none"
    print(
        f"{len(model)} model variables under prefix {c['prefix']!r} ({convs} conv2d kernels: "
        f"depth {fits}), {len(c['slots'])} skipped, {len(c['other'])} ignored"
    )
    if error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if model_cfg is not None:
        print(f"fits the depth-{model_cfg['depth']} ResNet ({classes} classes)")
    return 0


# ----------------------------------------------------------------------------- the import


def _existing_steps(trial: Path, cfg: Any, source: Path) -> list[int]:
    """Steps an earlier import of the same source and config left in ``trial``; raises for a
    trial directory of anything else."""
    from trainer import checkpoint
    from trainer.status import check_config

    if not trial.exists():
        return []
    prov = read_json(trial / IMPORT_JSON, default=None)
    if not isinstance(prov, dict) or prov.get("source") != str(source):
        raise ImportArgError(
            f"{trial} exists and was not imported from {source}; use another --name or --runs"
        )
    try:
        check_config(trial, cfg)
    except base.ConfigError as e:
        raise ImportArgError(str(e)) from None
    return checkpoint.list_steps(checkpoint.checkpoint_dir(trial))


def _convert(ckpts: dict[int, str], plans: dict[int, Any], staging: Path) -> dict[int, Any]:
    """Write each step's orbax checkpoint into ``staging``; the per-step provenance."""
    from trainer import checkpoint
    from trainer.models import resnet_tf as rt

    out = {}
    for step, p in plans.items():
        t0 = time.time()
        variables, global_step = rt.read_checkpoint(ckpts[step], p)
        name = Path(ckpts[step]).name
        if global_step is not None and global_step != step:
            raise rt.TFCheckpointError(
                f"{name}: global_step is {global_step}, the file name says {step}"
            )
        checkpoint.save_variables(checkpoint.checkpoint_dir(staging), step, variables)
        out[step] = {"file": name, "global_step": global_step}
        print(f"imported {name} -> checkpoints/{step} ({time.time() - t0:.1f} s)", flush=True)
    return out


def _records(cfg: Any, prov: dict[str, Any], command: str) -> dict[str, Any]:
    """The trial's config.json, overrides.json, import.json, metrics.jsonl and status.json
    (last), as ``{file name: content}``."""
    import json

    from trainer.status import new_status, now_iso

    steps = sorted(int(s) for s in prov["steps"])
    lines = [
        {"kind": "import", "step": s, "epoch": _epoch(cfg, s), "source": prov["steps"][s]["file"]}
        for s in steps
    ]
    status = new_status(
        command,
        state="done",
        step=steps[-1],
        total_steps=steps[-1],
        epoch=_epoch(cfg, steps[-1]),
        started=prov["imported"],
        finished=now_iso(),
        wall_time_s=prov["wall_time_s"],
    )
    return {
        "config.json": cfg.to_dict(),
        "overrides.json": _overrides_json(cfg),
        IMPORT_JSON: {**prov, "steps": {str(s): prov["steps"][s] for s in steps}},
        "metrics.jsonl": "".join(json.dumps(r, sort_keys=True) + "\n" for r in lines),
        "status.json": status,
    }


def _install(staging: Path, trial: Path, new_steps: list[int], files: dict[str, Any]) -> None:
    """Move the staged steps and records into ``trial``: one rename when it is new, else the
    new step directories first and the records after them (status.json last)."""
    from trainer import checkpoint

    def write_files(target: Path) -> None:
        for name, content in files.items():
            write = atomic_write_text if isinstance(content, str) else atomic_write_json
            write(target / name, content)

    if not trial.exists():
        write_files(staging)
        os.rename(staging, trial)
        return
    ckpt = checkpoint.checkpoint_dir(trial)
    ckpt.mkdir(parents=True, exist_ok=True)
    for step in new_steps:
        os.rename(checkpoint.checkpoint_dir(staging) / str(step), ckpt / str(step))
    write_files(trial)


def run_import(args: argparse.Namespace, overrides: dict[str, Any]) -> int:
    from trainer.models import resnet_tf as rt
    from trainer.status import now_iso

    t0, started = time.time(), now_iso()
    source = Path(args.tf_checkpoints).absolute()
    found = rt.find_checkpoints(source)
    steps = _steps(found, args.steps)
    model_cfg = _config(overrides).model.to_dict()
    if not args.runs:
        raise ImportArgError("--runs is required: the sweep directory to write the trial into")
    if "://" in args.runs:  # the trial is staged and renamed into place: a local folder
        raise ImportArgError(
            f"--runs={args.runs}: import writes a local (or mounted) folder; copy the trial "
            "to the bucket afterwards (gcloud storage cp -r)"
        )
    plans = {}
    for step in steps:  # every variable list first: a mismatch anywhere stops before any work
        try:
            plans[step] = rt.plan(rt.list_variables(found[step]), model_cfg)
        except rt.TFCheckpointError as e:
            raise rt.TFCheckpointError(f"{Path(found[step]).name}: {e}") from None
    classes = sorted({p.num_classes for p in plans.values()})
    if len(classes) > 1:
        raise rt.TFCheckpointError(f"the checkpoints disagree on the classes: {classes}")
    cfg = _config(overrides, classes[0])
    name = args.name or _trial_name(cfg)
    trial = Path(args.runs) / name
    have = _existing_steps(trial, cfg, source)
    todo = [s for s in steps if s not in have]
    if not todo:
        print(f"{trial} already holds steps {steps} of {source}; nothing to import")
        return 0
    staging = Path(args.runs) / STAGING / f"{name}.{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        new = _convert(found, {s: plans[s] for s in todo}, staging)
        old = read_json(trial / IMPORT_JSON, default={}) or {}
        p0 = plans[todo[0]]
        prov = {
            "source": str(source),
            "mapping": "trainer.models.resnet_tf (tensorflow/tpu resnet_model.py at 0325bff)",
            "name_prefix": p0.prefix,
            "num_classes": p0.num_classes,
            "skipped_variables": len(p0.skipped),
            "ignored_variables": p0.ignored,
            "epoch": "step x train.batch_size / 1,281,167 ImageNet train images (assumed)",
            "imported": old.get("imported", started),
            "wall_time_s": round(time.time() - t0, 1),
            "tensorflow": _tf_version(),
            "steps": {**{int(k): v for k, v in (old.get("steps") or {}).items()}, **new},
        }
        files = _records(cfg, prov, _command(args, overrides, name))
        _install(staging, trial, todo, files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        with contextlib.suppress(OSError):  # left when another import is staging there
            staging.parent.rmdir()
    print(
        f"wrote {trial}: {len(todo)} checkpoint(s), steps {todo[0]}..{todo[-1]}; score them with "
        f"python -m evaluator --runs={args.runs}"
    )
    return 0


def _tf_version() -> str | None:
    import importlib.metadata

    for dist in ("tensorflow", "tensorflow-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return None


def main(argv: list[str]) -> int:
    """``python -m evaluator import ...``; 0 done, 2 bad input (one line, nothing written)."""
    from sweeps.command import parse_overrides
    from trainer.models.resnet_tf import TFCheckpointError

    try:
        args, rest = _parser().parse_known_args(argv)
        overrides = parse_overrides(rest)
        if args.list:
            from trainer.models import resnet_tf as rt

            found = rt.find_checkpoints(args.tf_checkpoints)
            step = _steps(found, args.steps)[-1]
            model_cfg = None
            if "model.depth" in overrides:
                model_cfg = _config(overrides).model.to_dict()
            return list_checkpoint(found[step], model_cfg)
        return run_import(args, overrides)
    except (TFCheckpointError, ImportArgError, base.ConfigError) as e:
        print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
