"""The faults of the reliability table (tests/reliability_table.py): damaged checkpoints, a full
disk, signals. The runner (``how``) signals or mounts; these say what to run."""

from __future__ import annotations

from reliability_cases import RUN, Case, on_copy, trainer


def _full_disk(r, d):
    wd = d / "small" / "run"
    return trainer(
        wd,
        "--config.train.epochs=0.25",
        "--config.checkpoint.every_steps=5",
        "--config.model.width=1",
    )


def _signalled(r, d):
    return trainer(d / "sw" / "depth-6", *RUN, "--config.checkpoint.every_steps=1000")


def _resume(r, d):
    return trainer(d / "sw" / "depth-6", *RUN)


CASES: list[Case] = [
    # -- damaged checkpoints ---------------------------------------------------------------------
    Case(
        "8 bytes flipped in the latest checkpoint's data",
        "trainer",
        on_copy(damage={40: "flip"}),
        (0,),
        "checkpoint 40 is damaged",
        pick="is damaged",
    ),
    Case(
        "latest checkpoint's data file truncated",
        "trainer",
        on_copy(damage={40: "truncate"}),
        (0,),
        "(truncated)",
        pick="is damaged",
    ),
    Case(
        "latest checkpoint's data file deleted",
        "trainer",
        on_copy(damage={40: "delete"}),
        (0,),
        "is missing",
        pick="is damaged",
    ),
    Case(
        "latest checkpoint's _METADATA deleted",
        "trainer",
        on_copy(damage={40: "metadata"}),
        (0,),
        "_METADATA is missing",
        pick="is damaged",
    ),
    Case(
        "latest two checkpoints damaged (flip, truncate)",
        "trainer",
        on_copy(damage={40: "flip", 30: "truncate"}),
        (0,),
        "resumed from checkpoint 20",
        pick="resumed from",
    ),
    Case(
        "every checkpoint damaged",
        "trainer",
        on_copy(damage={40: "flip", 30: "truncate", 20: "delete", 10: "metadata"}),
        (0,),
        "starting from scratch",
        pick="starting from scratch",
    ),
    Case(
        "checkpoint without an integrity record (older version)",
        "trainer",
        on_copy(drop_record=(40,)),
        (0,),
        "no integrity record",
        pick="integrity record",
    ),
    Case(
        "no integrity record and a truncated data file",
        "trainer",
        on_copy(drop_record=(40,), damage={40: "truncate"}),
        (0,),
        "checkpoint 40 is damaged",
        pick="is damaged",
    ),
    Case(
        "latest and an earlier checkpoint damaged (flip 40, truncate 20)",
        "evaluator",
        on_copy(damage={40: "flip", 20: "truncate"}, cmd="evaluator"),
        (3,),
        "2 error(s)",
    ),
    Case(
        "damaged checkpoint (flip)",
        "evaluator score",
        on_copy(damage={40: "flip"}, cmd="score:40"),
        (3,),
        "checkpoint 40 is damaged",
    ),
    # -- the machine ------------------------------------------------------------------------------
    Case(
        "full disk during a save (3 MB tmpfs)",
        "trainer",
        _full_disk,
        (1,),
        "No space left on device",
        how="full_disk",
        needs_root=True,
    ),
    Case(
        "SIGTERM mid-run",
        "trainer",
        _signalled,
        (0,),
        "preempted: saved step",
        how="sigterm",
        pick="preempted: saved step",
    ),
    Case(
        "Ctrl-C (SIGINT) mid-run",
        "trainer",
        _signalled,
        (0,),
        "preempted: saved step",
        how="sigint",
        pick="preempted: saved step",
    ),
    Case(
        "kill -9 mid-run, then the same command",
        "trainer",
        _resume,
        (0,),
        "resumed from checkpoint",
        how="sigkill",
        pick="resumed from",
    ),
]
