"""The bad inputs of the reliability table (tests/reliability_table.py): config, data, the
workdir, sweep files and the launcher, the evaluator and the report."""

from __future__ import annotations

import json
import pickle

from reliability_cases import (
    PY,
    RUN,
    SHORT,
    Case,
    a_file,
    fresh,
    launcher,
    on_copy,
    sweep_file,
    trainer,
)


def _split_without_meta(r, d):
    split = d / "prep" / "fashion_mnist" / "16" / "train"
    split.mkdir(parents=True)
    (split / "images.npy").write_bytes(b"\x93NUMPY partial copy")
    return trainer(d / "sw" / "depth-6", f"--config.data.prepared_dir={d / 'prep'}")


class _RunsCode:
    def __reduce__(self):
        return (print, ("this pickle runs code",))


def _evil_imagenet(r, d):
    src = d / "imagenet64"
    src.mkdir()
    (src / "val_data").write_bytes(pickle.dumps({"data": _RunsCode(), "labels": [1]}))
    return [
        PY,
        "-m",
        "trainer.data",
        "imagenet64",
        f"--source-dir={src}",
        f"--prepared-dir={d / 'prep'}",
        "--splits=eval",
    ]


def _evaluator_on(r, d):
    wd = r.trained_copy(d)
    return [PY, "-m", "evaluator", f"--runs={wd.parent}"]


def _report_on(r, d):
    wd = r.trained_copy(d)
    return [PY, "-m", "evaluator.report", str(wd.parent)]


def _other_config(r, d):
    wd = r.trained_copy(d)
    return trainer(wd, *RUN, "--config.train.base_lr=0.3")


def _drift(r, d):
    from sweeps import smoke

    wd = d / "runs" / "smoke" / "depth-2"
    wd.mkdir(parents=True)
    config = smoke.get_config().to_dict()
    config["model"]["depth"], config["train"]["base_lr"] = 2, 0.3  # run before a recipe change
    (wd / "config.json").write_text(json.dumps(config))
    return [PY, "-m", "launch", "smoke", "--runs-dir", str(d / "runs"), "--no-eval"]


CASES: list[Case] = [
    # -- config, checked before any work --------------------------------------------------
    Case(
        "unknown config key", "trainer", fresh("--config.model.nope=1"), (2,), "unknown config key"
    ),
    Case(
        "value out of range (label smoothing 1.5)",
        "trainer",
        fresh("--config.train.label_smoothing=1.5"),
        (2,),
        "train.label_smoothing=1.5",
    ),
    Case(
        "ViT patch larger than the image",
        "trainer",
        fresh("--config.model.name=vit", "--config.model.variant=Ti/32"),
        (2,),
        "smaller than the ViT patch",
    ),
    Case(
        "image size not a multiple of the ViT patch",
        "trainer",
        fresh("--config.model.name=vit", "--config.model.variant=Ti/5"),
        (2,),
        "not a multiple",
    ),
    Case(
        "batch larger than the training split",
        "trainer",
        fresh("--config.train.batch_size=5000"),
        (2,),
        "larger than the 2000 training examples",
    ),
    Case(
        "batch not divisible by the devices (2)",
        "trainer",
        fresh("--config.train.batch_size=51"),
        (2,),
        "does not split over",
        how="two_devices",
    ),
    Case(
        "train_examples larger than the split (20,000 of 12,000)",
        "trainer",
        fresh("--config.data.train_examples=20000", *SHORT),
        (0,),
        "using all 12000",
        pick="data.train_examples",
    ),
    Case(
        "eval_examples larger than the split (5,000 of 2,000)",
        "trainer",
        fresh("--config.data.eval_examples=5000", *SHORT),
        (0,),
        "using all 2000",
        pick="data.eval_examples",
    ),
    Case(
        "workdir holding another config", "trainer", _other_config, (2,), "holds a different config"
    ),
    # -- data ----------------------------------------------------------------------------
    Case(
        "data.prepared_dir is a file",
        "trainer",
        lambda r, d: (
            a_file("afile")(d),
            trainer(d / "w", f"--config.data.prepared_dir={d / 'afile'}"),
        )[1],
        (2,),
        "is a file",
    ),
    Case(
        "split folder without meta.json (partial copy)",
        "trainer",
        _split_without_meta,
        (2,),
        "no meta.json",
    ),
    Case(
        "data.name=tfds:nonesuch",
        "trainer",
        fresh("--config.data.name=tfds:nonesuch"),
        (2,),
        "TFDS cannot open",
    ),
    Case(
        "ImageNet-64 batch file whose pickle would run code",
        "python -m trainer.data",
        _evil_imagenet,
        (2,),
        "refusing a pickle that would run code",
    ),
    # -- the workdir -----------------------------------------------------------------------
    Case(
        "--workdir under a file",
        "trainer",
        lambda r, d: (a_file("afile")(d), trainer(d / "afile" / "w", *SHORT))[1],
        (2,),
        "is a file",
    ),
    Case(
        "read-only workdir",
        "trainer",
        lambda r, d: trainer(r.trained_copy(d), *RUN),
        (2,),
        "cannot be written",
        how="read_only",
        ro="sw",
        needs_root=True,
    ),
    Case(
        "second trainer on a running trainer's workdir",
        "trainer",
        lambda r, d: trainer(d / "sw" / "depth-6", "--config.train.epochs=10"),
        (2,),
        "another trainer",
        how="second_trainer",
    ),
    # -- the launcher and sweep files -----------------------------------------------------------
    Case(
        "unknown sweep name",
        "launcher",
        lambda r, d: [PY, "-m", "launch", "nope", "--runs-dir", str(d)],
        (2,),
        "is unknown",
    ),
    Case(
        "sweep file with a syntax error",
        "launcher",
        sweep_file("def get_sweep(arg=None)\n    return []\n"),
        (2,),
        "line 6: SyntaxError",
    ),
    Case(
        "get_sweep returns None",
        "launcher",
        sweep_file("def get_sweep(arg=None):\n    pass\n"),
        (2,),
        "returned None",
    ),
    Case(
        "get_sweep returns strings",
        "launcher",
        sweep_file("def get_sweep(arg=None):\n    return ['model.depth=2']\n"),
        (2,),
        "holding a str",
    ),
    Case(
        "get_sweep raises",
        "launcher",
        sweep_file("def get_sweep(arg=None):\n    return [{}][3]\n"),
        (2,),
        "IndexError",
    ),
    Case("--runs-dir is a file", "launcher", launcher("afile", a_file("afile")), (2,), "is a file"),
    Case(
        "read-only runs dir",
        "launcher",
        launcher("runs", lambda d: (d / "runs").mkdir()),
        (2,),
        "cannot be written",
        how="read_only",
        ro="runs",
        needs_root=True,
    ),
    Case(
        "a trial dir holding another config",
        "launcher",
        _drift,
        (2,),
        "train.base_lr: 0.3 -> 0.4",
    ),
    Case(
        "two launchers on one sweep",
        "launcher",
        launcher("runs"),
        (2,),
        "another launcher",
        how="launcher_busy",
    ),
    # -- the evaluator and the report ------------------------------------------------------------
    Case(
        "--runs is not a directory",
        "evaluator",
        lambda r, d: [PY, "-m", "evaluator", f"--runs={d / 'nope'}"],
        (2,),
        "is not a directory",
    ),
    Case(
        "checkpoint:<trial>/checkpoints/<absent step>",
        "evaluator score",
        on_copy(cmd="score:99"),
        (2,),
        "step 99 not found",
    ),
    Case(
        "read-only sweep dir",
        "evaluator",
        _evaluator_on,
        (2,),
        "Read-only file system",
        how="read_only",
        ro="sw",
        needs_root=True,
    ),
    Case(
        "read-only sweep dir",
        "report",
        _report_on,
        (2,),
        "cannot write",
        how="read_only",
        ro="sw",
        needs_root=True,
    ),
    Case(
        "a directory without trials",
        "report",
        lambda r, d: [PY, "-m", "evaluator.report", str(d)],
        (2,),
        "no trial directories",
    ),
]
