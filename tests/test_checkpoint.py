"""Checkpoints: what is kept, what readers see, and exact resume after SIGKILL / SIGTERM."""

from __future__ import annotations

import json
import signal
import socket

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from trainer_support import (
    SHORT,
    assert_trees_equal,
    final_variables,
    metrics_count,
    run_trainer,
    start_trainer,
    train_steps_logged,
    trainer_env,
    wait_for,
)

from trainer import checkpoint


def _cfg(**kw):
    base = dict(every_steps=2, max_to_keep=2, keep_every_steps=4, async_save=True)
    return ml_collections.ConfigDict({**base, **kw})


def _state(value: float, ema: bool = False):
    params = {"dense": {"kernel": jnp.full((3, 4), value), "bias": jnp.full((4,), -value)}}
    tx = optax.sgd(0.1, momentum=0.9)
    st = {
        "step": jnp.array(int(value), jnp.int32),
        "params": params,
        "batch_stats": {"bn": {"mean": jnp.full((4,), value / 2)}},
        "opt_state": tx.init(params),
        "rng": jax.random.PRNGKey(int(value)),
    }
    if ema:
        st["ema_params"] = jax.tree.map(lambda p: p * 0.5, params)
    return st


def test_save_steps_rule():
    c = _cfg(every_steps=5, keep_every_steps=7)
    saved = [s for s in range(1, 24) if checkpoint.save_steps(s, *checkpoint.intervals(c), 23)]
    assert saved == [5, 7, 10, 14, 15, 20, 21, 23]


def test_keeps_latest_every_kth_and_final(tmp_path):
    c = _cfg()
    ck = checkpoint.Checkpointer(tmp_path, c, total_steps=11)
    for s in range(1, 12):
        if ck.should_save(s):
            ck.save(s, _state(float(s)))
    ck.wait()
    ck.close()
    # latest 2 (10, 11) + every 4th (4, 8) + final (11)
    assert checkpoint.list_steps(tmp_path / "checkpoints") == [4, 8, 10, 11]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["10", "11", "4", "8"]


def test_every_epochs_follows_the_runs_epoch_and_replaces_the_step_counts(tmp_path):
    c = _cfg(every_steps=5, keep_every_steps=7, every_epochs=1.0)
    assert checkpoint.intervals(c, 93) == (93, 93)  # 12,000 images / 128: the shipped subset
    assert checkpoint.intervals(c, 156) == (156, 156)  # 20,000 of Debian's full set
    assert checkpoint.intervals(_cfg(every_epochs=0.5), 10) == (5, 5)
    assert checkpoint.intervals(_cfg(every_epochs=0.01), 10) == (1, 1)
    assert checkpoint.intervals(_cfg(every_epochs=0.0), 10) == (2, 4)  # the step counts
    assert checkpoint.intervals(_cfg(), None) == (2, 4)  # old configs have no every_epochs
    with pytest.raises(ValueError, match="every_epochs"):
        checkpoint.intervals(c)
    # an epoch of 4 steps, 10 steps: saved and kept at 4 and 8, and the final step
    ck = checkpoint.Checkpointer(tmp_path, _cfg(every_epochs=1.0), 10, steps_per_epoch=4)
    saved = [s for s in range(1, 11) if ck.should_save(s)]
    assert saved == [4, 8, 10]
    for s in saved:
        ck.save(s, _state(float(s)))
    ck.wait()
    ck.close()
    assert checkpoint.list_steps(tmp_path / "checkpoints") == [4, 8, 10]


def test_restore_round_trip_and_evaluator_reader(tmp_path):
    c = _cfg(async_save=False)
    ck = checkpoint.Checkpointer(tmp_path, c, total_steps=3)
    st = _state(3.0, ema=True)
    ck.save(3, st)
    ck.wait()
    back = ck.restore(3, _state(0.0, ema=True))
    ck.close()
    assert_trees_equal(back, st)
    v = checkpoint.restore_variables(tmp_path / "checkpoints", 3)
    assert set(v) == {"params", "batch_stats", "ema_params"}
    assert isinstance(v["params"]["dense"]["kernel"], np.ndarray)
    np.testing.assert_array_equal(v["params"]["dense"]["kernel"], np.full((3, 4), 3.0))
    np.testing.assert_array_equal(v["ema_params"]["dense"]["bias"], np.full((4,), -1.5))
    np.testing.assert_array_equal(v["batch_stats"]["bn"]["mean"], np.full((4,), 1.5))
    # Without EMA there is no "ema_params" key.
    ck2 = checkpoint.Checkpointer(tmp_path / "b", c, total_steps=1)
    ck2.save(1, _state(1.0))
    ck2.close()
    assert set(checkpoint.restore_variables(tmp_path / "b" / "checkpoints", 1)) == {
        "params",
        "batch_stats",
    }


def test_readers_ignore_a_partial_step_and_missing_dirs(tmp_path):
    c = _cfg()
    ck = checkpoint.Checkpointer(tmp_path, c, total_steps=4)
    ck.save(2, _state(2.0))
    ck.close()
    # What a kill during a write leaves: a temporary step directory without a commit marker.
    (tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-1234").mkdir()
    assert checkpoint.list_steps(tmp_path / "checkpoints") == [2]
    assert checkpoint.Checkpointer(tmp_path, c, total_steps=4).latest_step() == 2
    assert checkpoint.list_steps(tmp_path / "nothing") == []
    with pytest.raises(FileNotFoundError, match="step 4 not found"):
        checkpoint.restore_variables(tmp_path / "checkpoints", 4)


# ----------------------------------------------------------------------------- real runs


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("jax-cache")


@pytest.fixture(scope="module")
def reference(tmp_path_factory, cache_dir):
    """One uninterrupted run of the short smoke config on 2 CPU devices: its final variables."""
    wd = tmp_path_factory.mktemp("reference") / "run"
    r = run_trainer(wd, *SHORT, env=trainer_env(cache_dir, devices=2))
    assert r.returncode == 0, r.stdout + r.stderr
    status = json.loads((wd / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == 40
    return final_variables(wd)


def _tmp_step_dirs(ckpt_dir):
    if not ckpt_dir.is_dir():
        return []
    return [p for p in ckpt_dir.iterdir() if "orbax-checkpoint-tmp" in p.name]


@pytest.mark.slow
def test_sigkill_during_a_save_and_mid_training_resumes_exactly(tmp_path, reference, cache_dir):
    env = trainer_env(cache_dir, devices=2)
    # 1. SIGKILL while a checkpoint is being written (a fresh run per try, until a kill leaves
    #    a partial step directory behind).
    left_partial = False
    for attempt in range(4):
        wd = tmp_path / f"run{attempt}"
        ckpt = wd / "checkpoints"
        p = start_trainer(wd, *SHORT, env=env)
        seen = wait_for(lambda d=ckpt: _tmp_step_dirs(d), p, poll=0.001)
        p.kill()
        p.wait()
        if seen and _tmp_step_dirs(ckpt):
            left_partial = True
            break
    assert left_partial, "never caught a checkpoint write in progress"
    partial = {int(d.name.split(".")[0]) for d in _tmp_step_dirs(ckpt)}
    assert not partial & set(checkpoint.list_steps(ckpt))
    # 2. Restart and SIGKILL mid-training, once a checkpoint is final and a later step logged.
    skip = metrics_count(wd)
    p = start_trainer(wd, *SHORT, env=env)

    def trained_past_a_checkpoint():
        steps = checkpoint.list_steps(ckpt)
        return steps and train_steps_logged(wd, skip) > steps[-1]

    got = wait_for(trained_past_a_checkpoint, p, poll=0.01)
    p.kill()
    out = p.communicate()[0]
    assert got and p.returncode == -signal.SIGKILL, out
    # 3. Restart to the end: identical final parameters and statistics.
    r = run_trainer(wd, *SHORT, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "resumed from checkpoint" in r.stdout
    assert json.loads((wd / "status.json").read_text())["state"] == "done"
    assert_trees_equal(final_variables(wd), reference)


@pytest.mark.slow
def test_sigterm_saves_exits_zero_and_resumes_exactly(tmp_path, reference, cache_dir):
    wd = tmp_path / "run"
    env = trainer_env(cache_dir, devices=2)
    p = start_trainer(wd, *SHORT, "--config.checkpoint.every_steps=1000", env=env)
    got = wait_for(lambda: train_steps_logged(wd) >= 5, p)
    p.send_signal(signal.SIGTERM)
    out = p.communicate(timeout=120)[0]
    assert got and p.returncode == 0, out
    status = json.loads((wd / "status.json").read_text())
    assert status["state"] == "preempted", status
    saved = checkpoint.list_steps(wd / "checkpoints")
    assert saved == [status["step"]] and 5 <= status["step"] < 40
    r = run_trainer(wd, *SHORT, "--config.checkpoint.every_steps=1000", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"resumed from checkpoint {saved[0]}" in r.stdout
    assert json.loads((wd / "status.json").read_text())["state"] == "done"
    assert_trees_equal(final_variables(wd), reference)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.multiprocess
def test_two_processes_match_one_process_and_share_preemption(tmp_path, reference, cache_dir):
    wd = tmp_path / "run"

    def start_both():
        port = _free_port()
        return [
            start_trainer(
                wd,
                *SHORT,
                f"--config.distributed.coordinator_address=127.0.0.1:{port}",
                "--config.distributed.num_processes=2",
                f"--config.distributed.process_id={i}",
                env=trainer_env(cache_dir, devices=1),
            )
            for i in range(2)
        ]

    # SIGTERM to process 1 only: under jax.distributed both agree on a step, save it, exit 0.
    procs = start_both()
    got = wait_for(lambda: train_steps_logged(wd) >= 5, procs[0], poll=0.005)
    procs[1].send_signal(signal.SIGTERM)
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert got, outs
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
    status = json.loads((wd / "status.json").read_text())
    assert status["state"] == "preempted" and 5 <= status["step"] < 40, status
    assert status["step"] in checkpoint.list_steps(wd / "checkpoints")
    # Resume both to the end.
    procs = start_both()
    outs = [p.communicate(timeout=300)[0] for p in procs]
    for p, out in zip(procs, outs, strict=True):
        assert p.returncode == 0, out
    assert f"resumed from checkpoint {status['step']}" in outs[0]
    status = json.loads((wd / "status.json").read_text())
    assert status["state"] == "done" and status["step"] == 40
    # The same global batch over the same 2-device mesh as the one-process reference: the
    # cross-process (gloo) reductions give the very same sums, so the result is bitwise equal.
    assert_trees_equal(final_variables(wd), reference)
