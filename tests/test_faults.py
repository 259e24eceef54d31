"""Fault injection: damaged checkpoints (bit flips, truncation, deleted files) in the latest and
an earlier step, seen by the checkpoint layer, the evaluator and the trainer; a full disk during
a save; Ctrl-C and a second trainer on one workdir.

The fast tests save tiny states with the trainer's ``Checkpointer``; the slow ones share one
uninterrupted smoke run (``reference``) and copy its workdir before damaging it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from eval_support import Trial
from fault_support import DAMAGE, is_root, small_filesystem
from trainer_support import (
    assert_trees_equal,
    final_variables,
    run_trainer,
    start_trainer,
    train_steps_logged,
    trainer_env,
    wait_for,
)

from evaluator import proxy, records
from evaluator.__main__ import main as evaluator_main
from trainer import checkpoint, integrity
from trainer.files import FileLock

# ----------------------------------------------------------------------------- checkpoint layer


def _cfg(**kw):
    base = dict(every_steps=1, max_to_keep=10, keep_every_steps=0, async_save=True)
    return ml_collections.ConfigDict({**base, **kw})


def _state(v: float) -> dict:
    return {
        "step": jnp.array(int(v), jnp.int32),
        "params": {"w": jnp.arange(50_000, dtype=jnp.float32) * v, "b": jnp.full((7,), v)},
        "batch_stats": {},
        "opt_state": {"m": jnp.full((3, 4), -v)},
        "rng": jnp.zeros((2,), jnp.uint32),
    }


def _saved(tmp_path: Path, steps=(1, 2, 3, 4), **kw) -> Path:
    with checkpoint.Checkpointer(tmp_path, _cfg(**kw), total_steps=max(steps)) as ck:
        for s in steps:
            ck.save(s, _state(float(s)))
        ck.wait()
    return tmp_path / checkpoint.CHECKPOINT_DIR


@pytest.mark.parametrize("async_save", [True, False])
def test_every_step_gets_a_record_before_it_commits(tmp_path, async_save):
    ckpts = _saved(tmp_path, async_save=async_save)
    for s in (1, 2, 3, 4):
        record = json.loads((ckpts / str(s) / integrity.RECORD).read_text())
        assert record["step"] == s and record["format"] == integrity.FORMAT
        files = set(record["files"])
        assert "default/_METADATA" in files and "_CHECKPOINT_METADATA" not in files
        assert any("/d/" in f for f in files)  # the array data
        assert integrity.verify(ckpts / str(s)) == integrity.VERIFIED
    fps = {integrity.fingerprint(ckpts / str(s)) for s in (1, 2, 3, 4)}
    assert len(fps) == 4  # every save is told apart


@pytest.mark.parametrize(
    "kind, needle",
    [
        ("flip", "does not match its recorded sha256"),
        ("truncate", "(truncated)"),
        ("delete", "is missing"),
        ("metadata", "default/_METADATA is missing"),
    ],
)
def test_damage_is_refused_in_one_line_by_every_reader(tmp_path, kind, needle):
    ckpts = _saved(tmp_path)
    DAMAGE[kind](ckpts / "3")
    with pytest.raises(integrity.Damaged, match=needle):
        integrity.verify(ckpts / "3")
    with pytest.raises(integrity.Damaged) as e:
        checkpoint.restore_variables(ckpts, 3)
    assert str(e.value).startswith("checkpoint 3 is damaged: ") and "\n" not in str(e.value)
    np.testing.assert_array_equal(
        checkpoint.restore_variables(ckpts, 2)["params"]["w"],
        np.asarray(_state(2.0)["params"]["w"]),
    )


def test_a_step_without_a_record_is_read_unverified_and_a_bad_record_is_damage(tmp_path):
    ckpts = _saved(tmp_path)
    (ckpts / "4" / integrity.RECORD).unlink()  # saved by an older version
    assert integrity.verify(ckpts / "4") == integrity.NO_RECORD
    assert checkpoint.restore_variables(ckpts, 4)["params"]["b"][0] == 4.0
    (ckpts / "3" / integrity.RECORD).write_text("{not json")
    with pytest.raises(integrity.Damaged, match="integrity.json is unreadable"):
        integrity.verify(ckpts / "3")


def test_restore_latest_good_moves_damaged_steps_aside_and_saves_them_again(tmp_path):
    ckpts = _saved(tmp_path)
    DAMAGE["flip"](ckpts / "4")  # the latest
    DAMAGE["truncate"](ckpts / "3")  # an earlier one
    said = []
    with checkpoint.Checkpointer(tmp_path, _cfg(), total_steps=4) as ck:
        step, state, moved = ck.restore_latest_good(_state(0.0), said.append)
        assert step == 2 and ck.last_saved == 2
        np.testing.assert_array_equal(state["params"]["w"], _state(2.0)["params"]["w"])
        assert [m["step"] for m in moved] == [4, 3]
        assert "sha256" in moved[0]["reason"] and "truncated" in moved[1]["reason"]
        assert len(said) == 2 and all("\n" not in s for s in said)
        assert said[0].startswith("checkpoint 4 is damaged (") and "trying older ones" in said[0]
        assert checkpoint.list_steps(ckpts) == [1, 2]
        damaged = tmp_path / checkpoint.DAMAGED_DIR
        assert sorted(p.name for p in damaged.iterdir()) == ["3", "4"]  # moved, not deleted
        for s in (3, 4):  # the run carries on and saves them anew
            ck.save(s, _state(float(s)))
        ck.wait()
    assert checkpoint.list_steps(ckpts) == [1, 2, 3, 4]
    assert all(integrity.verify(ckpts / str(s)) == integrity.VERIFIED for s in (3, 4))
    # A second damage of step 4 goes beside the first one.
    DAMAGE["delete"](ckpts / "4")
    with checkpoint.Checkpointer(tmp_path, _cfg(), total_steps=4) as ck:
        assert ck.restore_latest_good(_state(0.0), said.append)[0] == 3
    assert sorted(p.name for p in damaged.iterdir()) == ["3", "4", "4-2"]


def test_no_intact_step_left_means_a_fresh_start(tmp_path):
    ckpts = _saved(tmp_path, steps=(1, 2))
    DAMAGE["metadata"](ckpts / "2")
    (ckpts / "1" / integrity.RECORD).unlink()  # unverifiable, and unreadable too
    DAMAGE["delete"](ckpts / "1")
    with checkpoint.Checkpointer(tmp_path, _cfg(), total_steps=2) as ck:
        step, state, moved = ck.restore_latest_good(_state(0.0), lambda s: None)
    assert (step, state, [m["step"] for m in moved]) == (None, None, [2, 1])
    assert moved[1]["reason"] and "\n" not in moved[1]["reason"]  # orbax's error, one line


def test_a_verified_step_that_does_not_restore_is_an_error_not_damage(tmp_path):
    _saved(tmp_path, steps=(1,))
    like = _state(0.0)
    like["params"]["w"] = jnp.zeros((3,))  # another shape: a code change, not a damaged file
    with checkpoint.Checkpointer(tmp_path, _cfg(), total_steps=1) as ck:
        with pytest.raises(Exception):  # noqa: B017 (orbax's own error)
            ck.restore_latest_good(like, lambda s: None)
    assert checkpoint.list_steps(tmp_path / checkpoint.CHECKPOINT_DIR) == [1]


# ----------------------------------------------------------------------------- the evaluator


@pytest.fixture(scope="module")
def proxy_dir(tmp_path_factory) -> Path:
    return proxy.build_proxy(tmp_path_factory.mktemp("bench") / "proxy", per_category=6)


def _records(trial: Path) -> dict[int, dict]:
    return {int(p.stem): json.loads(p.read_text()) for p in (trial / "perceptual").glob("*.json")}


def test_evaluator_records_an_error_never_a_score_and_exits_non_zero(tmp_path, proxy_dir, capsys):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10, 20, 30)
    t.status("done")
    ckpts = t.dir / "checkpoints"
    DAMAGE["flip"](ckpts / "30")  # the latest: a flip that restores silently without a record
    DAMAGE["truncate"](ckpts / "10")  # an earlier one
    assert evaluator_main([f"--runs={runs}"]) == 3
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("evaluator: 1 step(s) scored, 2 error(s), 0 skipped")
    assert "Traceback" not in out
    recs = _records(t.dir)
    for s in (10, 30):
        assert recs[s]["error"].startswith(f"checkpoint {s} is damaged: ")
        assert "benchmarks" not in recs[s] and "\n" not in recs[s]["error"]
    assert recs[20]["error"] is None and recs[20]["integrity"] == integrity.VERIFIED
    assert recs[20]["benchmarks"]["proxy"]["distances"]["local"]["ps"] > 0
    # The one-checkpoint command refuses it too, in one line.
    argv = ["score", "--benchmark=proxy", f"--data-dir={proxy_dir}"]
    assert evaluator_main([*argv, f"--metric=checkpoint:{ckpts / '30'}"]) == 3
    err = capsys.readouterr().err
    assert err.startswith("error: checkpoint 30 is damaged: ") and err.count("\n") == 1
    assert evaluator_main([*argv, f"--metric=checkpoint:{ckpts / '99'}"]) == 2
    assert "step 99 not found" in capsys.readouterr().err
    assert evaluator_main([f"--runs={runs}", "--allow-errors"]) == 0
    # The trainer moves a damaged step aside and saves it again: a new save, scored this time.
    for s in (10, 30):
        shutil.move(ckpts / str(s), t.dir / checkpoint.DAMAGED_DIR / str(s))
    t.save(10, 30)
    assert evaluator_main([f"--runs={runs}"]) == 0
    assert "2 step(s) scored, 0 error(s)" in capsys.readouterr().out
    recs = _records(t.dir)
    assert all(recs[s]["error"] is None for s in (10, 20, 30))


def test_a_second_evaluator_on_a_sweep_is_refused(tmp_path, proxy_dir, capsys):
    runs = tmp_path / "runs" / "sw"
    Trial(runs, "depth-2", proxy_dir)
    lock = FileLock(runs / ".evaluator.lock").acquire()  # as a running job holds it
    try:
        assert evaluator_main([f"--runs={runs}"]) == 2
    finally:
        lock.release()
    err = capsys.readouterr().err
    assert f"another evaluator (pid {os.getpid()}" in err and err.count("\n") == 1


def test_a_checkpoint_without_a_record_is_scored_with_a_note(tmp_path, proxy_dir):
    runs = tmp_path / "runs" / "sw"
    t = Trial(runs, "depth-2", proxy_dir)
    t.save(10)
    (t.dir / "checkpoints" / "10" / integrity.RECORD).unlink()
    assert evaluator_main([f"--runs={runs}"]) == 0
    rec = records.read_result(t.dir, 10)
    assert rec["error"] is None and rec["integrity"] == integrity.NO_RECORD


# ----------------------------------------------------------------------------- the trainer


RUN = [
    "--config.train.epochs=1",  # 40 steps of 50
    "--config.checkpoint.every_steps=10",
    "--config.checkpoint.max_to_keep=10",  # keeps 10, 20, 30, 40
]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir, proxy_dir):
    """One uninterrupted smoke run (checkpoints 10..40): its workdir and final variables."""
    wd = tmp_path_factory.mktemp("reference") / "depth-6"
    r = run_trainer(wd, *_run(proxy_dir), env=trainer_env(cache_dir))
    assert r.returncode == 0, r.stdout + r.stderr
    assert checkpoint.list_steps(wd / "checkpoints") == [10, 20, 30, 40]
    return wd, final_variables(wd)


def _run(proxy_dir: Path) -> list[str]:
    return [*RUN, f"--config.perceptual.proxy_dir={proxy_dir}", "--config.perceptual.batch_size=16"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "damage, resumes_from",
    [
        ({40: "flip", 30: "truncate"}, 20),  # the latest and an earlier one
        ({40: "delete", 30: "metadata", 20: "flip", 10: "truncate"}, None),  # every step
    ],
)
def test_trainer_resumes_from_the_newest_intact_step_bitwise(
    tmp_path, reference, cache_dir, proxy_dir, damage, resumes_from, capsys
):
    ref_dir, ref_vars = reference
    runs = tmp_path / "runs" / "sw"
    wd = runs / ref_dir.name
    shutil.copytree(ref_dir, wd)
    for step, kind in damage.items():
        DAMAGE[kind](wd / "checkpoints" / str(step))
    if resumes_from:  # the evaluator first: error records for the damaged steps
        assert evaluator_main([f"--runs={runs}"]) == 3
    r = run_trainer(wd, *_run(proxy_dir), env=trainer_env(cache_dir))
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Traceback" not in out
    for step in damage:
        assert f"checkpoint {step} is damaged (" in r.stdout
    if resumes_from:
        assert f"resumed from checkpoint {resumes_from}" in r.stdout
    else:
        assert "no intact checkpoint left: starting from scratch" in r.stdout
    status = json.loads((wd / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == 40
    assert [d["step"] for d in status["damaged_checkpoints"]] == sorted(damage, reverse=True)
    moved = sorted(int(p.name) for p in (wd / checkpoint.DAMAGED_DIR).iterdir())
    assert moved == sorted(damage)
    assert checkpoint.list_steps(wd / "checkpoints") == [10, 20, 30, 40]
    assert_trees_equal(final_variables(wd), ref_vars)
    if resumes_from:  # the steps saved anew are scored, not left as errors
        capsys.readouterr()
        assert evaluator_main([f"--runs={runs}"]) == 0
        assert "2 step(s) scored, 0 error(s)" in capsys.readouterr().out


@pytest.mark.slow
def test_ctrl_c_saves_like_sigterm_and_a_second_trainer_is_refused(
    tmp_path, reference, cache_dir, proxy_dir
):
    wd = tmp_path / "run"
    # 400 steps, so the run is still going when the second trainer and the Ctrl-C come.
    args = [*_run(proxy_dir), "--config.train.epochs=10", "--config.checkpoint.every_steps=1000"]
    p = start_trainer(wd, *args, env=trainer_env(cache_dir))
    got = wait_for(lambda: train_steps_logged(wd) >= 5, p)
    # Two hand-run trainers on one workdir: the second is refused before it writes anything.
    metrics_before = (wd / "metrics.jsonl").read_text()
    second = run_trainer(wd, *args, env=trainer_env(cache_dir))
    assert second.returncode == 2, second.stdout + second.stderr
    assert f"another trainer (pid {p.pid}" in second.stderr
    assert second.stderr.count("\n") == 1
    assert (wd / "metrics.jsonl").read_text().startswith(metrics_before)
    p.send_signal(signal.SIGINT)
    out = p.communicate(timeout=120)[0]
    assert got and p.returncode == 0, out
    assert "Traceback" not in out and "SIGINT received: saving" in out
    status = json.loads((wd / "status.json").read_text())
    assert status["state"] == "preempted" and status["error"] is None, status
    assert checkpoint.list_steps(wd / "checkpoints")[-1] == status["step"]  # saved where it stopped
    assert 5 <= status["step"] < 400


def test_tracebacks_through_orbax_are_dropped_from_the_logs_and_others_kept():
    # asyncio's "exception was never retrieved" for an orbax save task came after the trainer's
    # one line on a full disk under load; asyncio's other errors and orbax's plain messages stay
    import logging
    import sys

    from trainer.__main__ import _drop_orbax_tracebacks

    def exc_info(filename):
        try:
            exec(compile("raise ValueError('No space left [os_error_code=28]')", filename, "exec"))
        except ValueError:
            return sys.exc_info()

    def record(pathname, info, name="asyncio"):
        return logging.LogRecord(name, logging.ERROR, pathname, 1, "msg", (), info)

    asyncio_path = "/usr/lib/python3.11/asyncio/base_events.py"
    orbax_file = "/venv/site-packages/orbax/checkpoint/serialization.py"
    assert not _drop_orbax_tracebacks(record(asyncio_path, exc_info(orbax_file)))
    assert not _drop_orbax_tracebacks(record(orbax_file, exc_info("x.py"), "absl"))
    assert _drop_orbax_tracebacks(record(asyncio_path, exc_info("/app/mine.py")))
    assert _drop_orbax_tracebacks(record(orbax_file, None, "absl"))


@pytest.mark.slow
@pytest.mark.skipif(not is_root(), reason="mounting a small tmpfs needs root")
def test_full_disk_during_a_save_ends_in_one_clear_line(tmp_path, cache_dir):
    with small_filesystem(tmp_path / "small", "3m") as small:
        wd = small / "run"
        r = run_trainer(
            wd,
            "--config.train.epochs=0.25",
            "--config.checkpoint.every_steps=5",
            "--config.model.width=1",  # a 9 MB state: the first save cannot fit
            env=trainer_env(cache_dir),
        )
        status = json.loads((wd / "status.json").read_text())
    err = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode == 1, r.stdout + r.stderr
    assert err[-1].startswith("error: No space left on device [errno 28] writing ")
    assert status["state"] == "failed" and err[-1] == f"error: {status['error']}"
    assert "Traceback" not in r.stderr
    assert len(err) < 20
