"""The launcher's trial model and local runner, fast: a stand-in trainer (a small script run as the
launcher's ``--python``) follows the trainer's status.json/exit-code contract, so failure
isolation, resume after Ctrl-C, skipping done trials, GPU/thread assignment and the drift check
are exercised in seconds. tests/test_launch_train.py does the same with the real trainer."""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from fault_support import ctrl_c_able

from launch import procs
from launch import trials as tr
from launch.__main__ import main as launch_main
from launch.table import status_table
from sweeps import base
from sweeps.command import parse_overrides

REPO = Path(__file__).resolve().parent.parent

# Behaves like `python -m trainer` as far as the launcher can see. The trial's data.source_dir
# picks what it does: ok* finish, fail records a failure, crash dies without a word in
# status.json, hold* waits (while <workdir>/hold exists) until SIGTERM and ends preempted.
FAKE_TRAINER = r"""
import json, os, signal, socket, sys, time
args = sys.argv[1:]
if args[:2] == ["-m", "evaluator"]:  # stands in for the evaluator job too
    runs = args[2].split("=", 1)[1]
    json.dump(args, open(os.path.join(runs, "evaluator_args.json"), "w"))
    def states():
        out = {}
        for name in sorted(os.listdir(runs)):
            path = os.path.join(runs, name, "status.json")
            if os.path.exists(path):
                out[name] = json.load(open(path)).get("state")
        return out
    seen = {"pid": os.getpid(), "at_start": states()}
    json.dump(seen, open(os.path.join(runs, "evaluator_seen.json"), "w"))
    if os.environ.get("FAKE_EVAL_EARLY"):  # fails at once, as with a bad --bapps-dir
        print("evaluator: --bapps-dir /nowhere: no such folder")
        sys.exit(int(os.environ.get("FAKE_EVAL_RC", "2")))
    # --watch: like the real one, ends once every trial has ended
    while "--watch" in args and set(states().values()) - {"done", "failed", "diverged"}:
        time.sleep(0.05)
    while os.path.exists(os.path.join(runs, "eval_hold")):  # a long last checkpoint
        time.sleep(0.05)
    fail_starts = os.path.join(runs, "source_dir-fail", "starts.txt")
    n = len(open(fail_starts).read().split()) if os.path.exists(fail_starts) else 0
    seen.update(at_end=states(), fail_starts_at_end=n)
    json.dump(seen, open(os.path.join(runs, "evaluator_seen.json"), "w"))
    print("evaluator: scoring failed: no checkpoints readable")
    sys.exit(int(os.environ.get("FAKE_EVAL_RC", "0")))
if args[:2] == ["-m", "evaluator.report"]:  # ... and for the report
    with open(os.path.join(args[2], "report.md"), "w") as f:
        f.write("# Report\n\n| trial | PS |\n| --- | --- |\n| `ok1` | 71.0 |\n\nmore\n")
    open(os.path.join(args[2], "top1_vs_ps.png"), "w").close()
    print("wrote report.md")
    sys.exit(0)
assert args[:2] == ["-m", "trainer"], args
workdir = next(a.split("=", 1)[1] for a in args if a.startswith("--workdir="))
over = dict(a[len("--config."):].split("=", 1) for a in args if a.startswith("--config."))
mode = over.get("data.source_dir", "ok")

def status(**kw):
    path = os.path.join(workdir, "status.json")
    st = json.load(open(path)) if os.path.exists(path) else {}
    st.update(kw)
    with open(path + ".tmp", "w") as f:
        json.dump(st, f)
    os.replace(path + ".tmp", path)

with open(os.path.join(workdir, "starts.txt"), "a") as f:
    f.write("start\n")
json.dump({"argv": args, "env": {k: os.environ.get(k) for k in (
    "OMP_NUM_THREADS", "XLA_FLAGS", "CUDA_VISIBLE_DEVICES")}},
    open(os.path.join(workdir, "seen.json"), "w"))
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
status(state="running", pid=os.getpid(), host=socket.gethostname(), step=0, total_steps=10)
print("training", mode, flush=True)
if mode == "fail":
    status(state="failed", error="train.base_lr=5 made the model explode")
    sys.exit(1)
if mode == "crash":
    print("Traceback (most recent call last):\nRuntimeError: boom", flush=True)
    sys.exit(1)
while mode.startswith("hold") and os.path.exists(os.path.join(workdir, "hold")) and not stop:
    time.sleep(0.05)
if stop:
    status(state="preempted", step=4)
    sys.exit(0)
time.sleep(0.2)
status(state="done", step=10, total_steps=10, last_eval={"top1": 0.9}, wall_time_s=0.2)
"""


def sweep_file(tmp_path: Path, modes: list[str], name: str = "fake") -> Path:
    path = tmp_path / f"{name}.py"
    path.write_text(
        textwrap.dedent(f"""
        from sweeps import grid

        def get_config(arg=None):
            return grid.config(arg)

        def get_sweep(arg=None):
            return grid.axis("data.source_dir", {modes!r})
        """)
    )
    return path


@pytest.fixture
def fake_python(tmp_path):
    (tmp_path / "fake_trainer.py").write_text(FAKE_TRAINER)
    exe = tmp_path / "python"
    exe.write_text(f'#!/bin/sh\nexec {sys.executable} {tmp_path / "fake_trainer.py"} "$@"\n')
    exe.chmod(0o755)
    return str(exe)


def run_launcher(args, env=None, **kw):
    return subprocess.run(
        [sys.executable, "-m", "launch", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
        **kw,
    )


def starts(workdir: Path) -> int:
    p = workdir / "starts.txt"
    return len(p.read_text().splitlines()) if p.exists() else 0


# ----------------------------------------------------------------------------- trial model


def test_command_keeps_values_with_spaces_and_quotes(tmp_path):
    value = 'it\'s a "quoted" dir'
    (t,) = tr.load_trials("depth", "embedded", {"data.source_dir": value}, tmp_path)[:1]
    argv = t.command("python")
    assert argv[:3] == ["python", "-m", "trainer"]
    assert argv[3] == "--config=sweeps/depth.py:embedded" or argv[3].endswith(
        "sweeps/depth.py:embedded"
    )
    assert f"--config.data.source_dir={value}" in argv
    assert argv[-1] == f"--workdir={t.workdir}"
    assert shlex.split(t.command_text("python")) == argv


def test_cli_overrides_are_typed_and_checked():
    assert parse_overrides(["--config.train.epochs=3", "--config.data.flip=false"]) == {
        "train.epochs": 3.0,
        "data.flip": False,
    }
    assert parse_overrides(["--config.data.source_dir=(1, 2)"]) == {"data.source_dir": "(1, 2)"}
    with pytest.raises(base.ConfigError, match="unknown config key 'train.epoch'"):
        parse_overrides(["--config.train.epoch=3"])
    with pytest.raises(base.ConfigError, match="train.batch_size"):
        parse_overrides(["--config.train.batch_size=big"])


def test_swept_key_cannot_be_overridden_for_all():
    with pytest.raises(base.ConfigError, match="model.depth is swept by 'depth'"):
        tr.load_trials("depth", "embedded", {"model.depth": 50})


def test_bad_trial_value_fails_before_anything_naming_the_trial(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text(
        "from sweeps import grid\n"
        "def get_config(arg=None):\n    return grid.config(arg)\n"
        "def get_sweep(arg=None):\n    return grid.axis('train.label_smoothing', [0.1, 1.5])\n"
    )
    with pytest.raises(base.ConfigError, match=r"trial 'ls-1.5': train.label_smoothing=1.5"):
        tr.load_trials(str(path), "embedded", runs_dir=tmp_path / "runs")
    assert launch_main([str(path), "--runs-dir", str(tmp_path / "runs")]) == 2
    assert not (tmp_path / "runs").exists()


def test_unknown_sweep_lists_available(capsys):
    assert launch_main(["nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "sweep 'nope' is unknown; available: " in err and "depth" in err and "archs" in err


def test_prepare_writes_run_files_once(tmp_path):
    trials = tr.load_trials("depth", "embedded", runs_dir=tmp_path)
    tr.prepare(trials)
    sweep = json.loads((tmp_path / "depth" / "sweep.json").read_text())
    assert sweep["trials"] == [t.name for t in trials] and sweep["preset"] == "embedded"
    t = trials[0]
    assert json.loads((t.workdir / "overrides.json").read_text()) == t.overrides
    assert (
        json.loads((t.workdir / "config.json").read_text())["model"]["depth"]
        == t.config.model.depth
    )
    st = t.status()
    assert st["state"] == "pending" and shlex.split(st["command"])[-1] == f"--workdir={t.workdir}"
    t.write_status(state="done", step=5)
    tr.prepare(tr.load_trials("depth", "embedded", runs_dir=tmp_path))  # same config: fine
    assert t.status()["state"] == "done"  # an existing status is never reset
    assert len(tr.todo(trials)) == len(trials) - 1


def test_drift_check_refuses_and_names_keys(tmp_path, capsys):
    tr.prepare(tr.load_trials("depth", "embedded", runs_dir=tmp_path))
    before = (tmp_path / "depth" / "depth-6" / "config.json").read_text()
    changed = tr.load_trials("depth", "embedded", {"train.epochs": 3.0}, runs_dir=tmp_path)
    with pytest.raises(tr.DriftError) as e:
        tr.prepare(changed)
    msg = str(e.value)
    assert "\n" not in msg
    assert "depth-6 (train.epochs: 2.0 -> 3.0)" in msg and "use a new --runs-dir" in msg
    rc = launch_main(["depth", "--runs-dir", str(tmp_path), "--config.train.epochs=3", "--no-eval"])
    assert rc == 2 and "train.epochs: 2.0 -> 3.0" in capsys.readouterr().err
    assert (tmp_path / "depth" / "depth-6" / "config.json").read_text() == before


def test_todo_states(tmp_path):
    trials = tr.load_trials("weight_decay", "embedded", runs_dir=tmp_path)
    tr.prepare(trials)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "trainer"])
    try:
        host = socket.gethostname()
        trials[0].write_status(state="done")
        trials[1].write_status(state="diverged")
        trials[2].write_status(state="running", host=host, pid=dead.pid)
        trials[3].write_status(state="running", host=host, pid=alive.pid)
        trials[4].write_status(state="failed")
        left = [t.name for t in tr.todo(trials)]
        assert left == [trials[2].name, trials[4].name]
        trials[3].write_status(state="running", host="another-node", pid=dead.pid)
        assert trials[3].name not in [t.name for t in tr.todo(trials)]  # not ours to judge
        assert "running (dead)" in status_table(trials)
    finally:
        alive.kill()
        alive.wait()


# ----------------------------------------------------------------------------- local runs


def test_failing_trials_are_isolated_and_reported(tmp_path, fake_python):
    spaced = "ok 'with' \"quotes\" and spaces"
    path = sweep_file(tmp_path, ["ok", "fail", "crash", spaced])
    runs = tmp_path / "runs"
    args = [str(path), "--runs-dir", str(runs), "--python", fake_python, "--no-eval"]
    r = run_launcher(args)
    assert r.returncode == 1, r.stdout + r.stderr
    trials = {t.name: t for t in tr.load_trials(str(path), "embedded", runs_dir=runs)}
    states = {n: t.status()["state"] for n, t in trials.items()}
    assert states == {
        "source_dir-ok": "done",
        "source_dir-fail": "failed",
        "source_dir-crash": "failed",
        "source_dir-okwithquotesandspaces": "done",
    }
    assert "RuntimeError: boom" in trials["source_dir-crash"].status()["error"]
    assert "made the model explode" in trials["source_dir-fail"].status()["error"]
    assert "FAILED (exit 1)" in r.stdout and "source_dir-crash" in r.stdout
    assert "2 done, 2 failed" in r.stdout  # the table at the end
    seen = json.loads(
        (trials["source_dir-okwithquotesandspaces"].workdir / "seen.json").read_text()
    )
    assert f"--config.data.source_dir={spaced}" in seen["argv"]
    assert "training" in (trials["source_dir-ok"].workdir / "train.log").read_text()
    # a rerun retries only the failed trials
    r = run_launcher(args)
    assert r.returncode == 1
    assert {n: starts(t.workdir) for n, t in trials.items()} == {
        "source_dir-ok": 1,
        "source_dir-fail": 2,
        "source_dir-crash": 2,
        "source_dir-okwithquotesandspaces": 1,
    }


def test_finished_sweep_reruns_nothing(tmp_path, fake_python):
    path = sweep_file(tmp_path, ["ok1", "ok2"])
    args = [str(path), "--runs-dir", str(tmp_path / "runs"), "--python", fake_python, "--no-eval"]
    assert run_launcher(args).returncode == 0
    r = run_launcher(args)
    assert r.returncode == 0 and "2 done, 0 to run" in r.stdout
    assert all(
        starts(t.workdir) == 1 for t in tr.load_trials(str(path), runs_dir=tmp_path / "runs")
    )


def test_interrupt_stops_children_and_rerun_carries_on(tmp_path, fake_python):
    path = sweep_file(tmp_path, ["ok", "hold", "ok2"])
    runs = tmp_path / "runs"
    trials = {t.name: t for t in tr.load_trials(str(path), runs_dir=runs)}
    hold = trials["source_dir-hold"]
    hold.workdir.mkdir(parents=True)
    (hold.workdir / "hold").touch()
    args = [str(path), "--runs-dir", str(runs), "--python", fake_python, "--no-eval"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch", *args], cwd=REPO, stdout=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_able,
    )  # fmt: skip
    deadline = time.time() + 60
    while hold.status().get("state") != "running" and time.time() < deadline:
        time.sleep(0.05)
    assert hold.status().get("state") == "running"
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "interrupted" in out
    assert hold.status()["state"] == "preempted"  # the child got SIGTERM and saved
    assert trials["source_dir-ok2"].status()["state"] == "pending"
    assert not procs.pid_alive(hold.status()["pid"])
    (hold.workdir / "hold").unlink()
    r = run_launcher(args)
    assert r.returncode == 0, r.stdout
    assert all(t.status()["state"] == "done" for t in trials.values())
    assert [starts(t.workdir) for t in trials.values()] == [1, 2, 1]  # done trial not retrained


def _launch_watching(path: Path, runs: Path, fake_python: str, ready) -> tuple:
    """The launcher on a machine without GPUs, started as a terminal would; returns it and its
    evaluator's pid once ``ready()`` holds and the evaluator has started."""
    seen = runs / "fake" / "evaluator_seen.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "launch", str(path), "--runs-dir", str(runs), "--python", fake_python],
        cwd=REPO, stdout=subprocess.PIPE, text=True, preexec_fn=ctrl_c_able,
        env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )  # fmt: skip
    deadline = time.time() + 60
    while not (ready() and seen.exists()) and time.time() < deadline:
        time.sleep(0.05)
    assert ready() and seen.exists()
    return proc, json.loads(seen.read_text())["pid"]


def test_interrupt_after_training_stops_the_evaluator_it_waits_for(tmp_path, fake_python):
    path = sweep_file(tmp_path, ["ok1"])
    runs = tmp_path / "runs"
    (trial,) = tr.load_trials(str(path), runs_dir=runs)
    (runs / "fake").mkdir(parents=True)
    (runs / "fake" / "eval_hold").touch()  # the evaluator is still scoring when training ends
    proc, evaluator_pid = _launch_watching(
        path, runs, fake_python, lambda: trial.status().get("state") == "done"
    )
    time.sleep(1.5)  # the launcher has seen the trial end and waits for the evaluator
    assert procs.pid_alive(evaluator_pid) and proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "1 trials: 1 done" in out and out.rstrip().endswith("rerun the same command to carry on")
    assert not procs.pid_alive(evaluator_pid)
    assert "wrote report.md" not in out


def _held_trial(tmp_path: Path) -> tuple[Path, Path, tr.Trial]:
    """A one-trial sweep whose trainer waits (until SIGTERM or its hold file goes)."""
    path = sweep_file(tmp_path, ["hold"])
    runs = tmp_path / "runs"
    (t,) = tr.load_trials(str(path), runs_dir=runs)
    t.workdir.mkdir(parents=True)
    (t.workdir / "hold").touch()
    return path, runs, t


def test_interrupt_stops_the_evaluator_watching_beside_the_trainers(tmp_path, fake_python):
    path, runs, hold = _held_trial(tmp_path)
    proc, evaluator_pid = _launch_watching(
        path, runs, fake_python, lambda: hold.status().get("state") == "running"
    )
    assert procs.pid_alive(evaluator_pid)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert hold.status()["state"] == "preempted"
    assert not procs.pid_alive(evaluator_pid)


def test_parallel_jobs_get_a_gpu_each(tmp_path, fake_python):
    path = sweep_file(tmp_path, ["ok1", "ok2"])
    args = [str(path), "--runs-dir", str(tmp_path / "runs"), "--python", fake_python]
    r = run_launcher([*args, "--jobs", "2", "--no-eval"], env={"CUDA_VISIBLE_DEVICES": "3,5"})
    assert r.returncode == 0, r.stdout + r.stderr
    trials = tr.load_trials(str(path), runs_dir=tmp_path / "runs")
    gpus = {
        json.loads((t.workdir / "seen.json").read_text())["env"]["CUDA_VISIBLE_DEVICES"]
        for t in trials
    }
    assert gpus == {"3", "5"}


def test_parallel_jobs_on_cpu_share_the_cores(tmp_path, fake_python):
    path = sweep_file(tmp_path, ["ok1", "ok2"])
    args = [str(path), "--runs-dir", str(tmp_path / "runs"), "--python", fake_python]
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "XLA_FLAGS")}
    env["CUDA_VISIBLE_DEVICES"] = ""
    r = subprocess.run(
        [sys.executable, "-m", "launch", *args, "--jobs", "2", "--no-eval"],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    per = max(1, len(os.sched_getaffinity(0)) // 2)
    for t in tr.load_trials(str(path), runs_dir=tmp_path / "runs"):
        seen = json.loads((t.workdir / "seen.json").read_text())["env"]
        assert seen["OMP_NUM_THREADS"] == str(per)
        if per == 1:
            assert "intra_op_parallelism_threads=1" in seen["XLA_FLAGS"]


def test_status_flag_prints_the_table(tmp_path, fake_python, capsys):
    path = sweep_file(tmp_path, ["ok1", "fail"])
    runs = tmp_path / "runs"
    run_launcher([str(path), "--runs-dir", str(runs), "--python", fake_python, "--no-eval"])
    assert launch_main([str(path), "--runs-dir", str(runs), "--status"]) == 0
    out = capsys.readouterr().out
    lines = {ln.split()[0]: ln.split() for ln in out.splitlines() if ln.startswith("source_dir-")}
    assert lines["source_dir-ok1"][1:4] == ["done", "10/10", "90.00%"]
    assert lines["source_dir-fail"][1] == "failed"


@pytest.mark.parametrize("eval_rc", [0, 1])
def test_evaluator_and_report_run_after_training(tmp_path, fake_python, eval_rc):
    """With GPUs (the trainers hold their memory) the evaluator runs once training is over."""
    path = sweep_file(tmp_path, ["ok1"])
    runs = tmp_path / "runs"
    args = [str(path), "--runs-dir", str(runs), "--python", fake_python]
    r = run_launcher(args, env={"FAKE_EVAL_RC": str(eval_rc), "CUDA_VISIBLE_DEVICES": "0"})
    assert r.returncode == eval_rc, r.stdout + r.stderr
    sweep_dir = runs / "fake"
    assert json.loads((sweep_dir / "evaluator_args.json").read_text()) == [
        "-m",
        "evaluator",
        f"--runs={sweep_dir}",
    ]
    seen = json.loads((sweep_dir / "evaluator_seen.json").read_text())
    assert seen["at_start"] == {"source_dir-ok1": "done"}
    assert "no checkpoints readable" in (sweep_dir / "evaluator.log").read_text()
    if eval_rc:
        assert "[evaluator] FAILED (exit 1): evaluator: scoring failed" in r.stdout
    # the report runs either way, and the run ends with its table and files
    tail = r.stdout[r.stdout.index("wrote report.md") :]
    assert "| `ok1` | 71.0 |" in tail and "more" not in tail
    assert f"report: {sweep_dir / 'report.md'}" in tail
    assert f"plot: {sweep_dir / 'top1_vs_ps.png'}" in tail


@pytest.mark.parametrize("eval_rc", [0, 1])
def test_without_gpus_the_evaluator_watches_beside_the_trainers(tmp_path, fake_python, eval_rc):
    """Without GPUs it starts (--watch) before the first trainer and the launcher waits for it
    before the report. A queued trial that failed before says pending first: otherwise the
    evaluator, seeing every trial ended, would stop before that trial ran again."""
    path = sweep_file(tmp_path, ["ok1", "fail"])
    runs = tmp_path / "runs"
    sweep_dir = runs / "fake"
    args = [str(path), "--runs-dir", str(runs), "--python", fake_python]
    env = {"FAKE_EVAL_RC": str(eval_rc), "CUDA_VISIBLE_DEVICES": ""}
    assert run_launcher([*args, "--no-eval"], env=env).returncode == 1  # "fail" fails
    r = run_launcher(args, env=env)  # ... and runs again
    assert r.returncode == 1, r.stdout + r.stderr
    assert json.loads((sweep_dir / "evaluator_args.json").read_text()) == [
        "-m", "evaluator", f"--runs={sweep_dir}", "--watch", "--poll-seconds=2",
    ]  # fmt: skip
    seen = json.loads((sweep_dir / "evaluator_seen.json").read_text())
    assert seen["at_start"]["source_dir-ok1"] == "done"
    assert seen["at_end"] == {"source_dir-ok1": "done", "source_dir-fail": "failed"}
    assert seen["fail_starts_at_end"] == 2  # it ended after the second run, not before it
    out = r.stdout
    assert out.index("as they are saved, beside the trainers") < out.index("[source_dir-fail]")
    ended = (
        "[evaluator] FAILED (exit 1): evaluator: scoring failed"
        if eval_rc
        else "[evaluator] done in"
    )
    assert out.index("1 done, 1 failed") < out.index(ended) < out.index("wrote report.md")
    assert not procs.pid_alive(seen["pid"])


def test_an_evaluator_failing_beside_the_trainers_is_reported_while_they_train(
    tmp_path, fake_python
):
    path, runs, hold = _held_trial(tmp_path)
    out_file = tmp_path / "launcher.out"
    with open(out_file, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "launch", str(path), "--runs-dir", str(runs),
             "--python", fake_python],
            cwd=REPO, stdout=out, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "CUDA_VISIBLE_DEVICES": "", "FAKE_EVAL_EARLY": "1"},
        )  # fmt: skip
    try:
        said = "[evaluator] FAILED beside the trainers (exit 2): evaluator: --bapps-dir /nowhere"
        deadline = time.time() + 60
        while said not in out_file.read_text() and time.time() < deadline:
            time.sleep(0.05)
        assert said in out_file.read_text()
        assert hold.status()["state"] == "running" and proc.poll() is None  # still training
    finally:
        (hold.workdir / "hold").unlink()
    assert proc.wait(timeout=60) == 1
    text = out_file.read_text()
    assert text.count(said) == 1 and "training goes on" in text
    assert text.index(said) < text.index("[source_dir-hold] done")
    assert "[evaluator] FAILED (exit 2)" in text  # and once more where the launcher waits for it
    assert "wrote report.md" in text


def test_without_an_evaluator_scoring_is_said_to_be_skipped_once(
    tmp_path, fake_python, monkeypatch, capsys
):
    from launch import results

    monkeypatch.setattr(results, "available", lambda module: module != results.EVALUATOR)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the path that would watch beside
    path = sweep_file(tmp_path, ["ok1"])
    args = [str(path), "--runs-dir", str(tmp_path / "runs"), "--python", fake_python]
    assert launch_main(args) == 0
    out = capsys.readouterr().out
    assert out.count("scoring skipped") == 1
    assert "[source_dir-ok1] done" in out


def test_missing_evaluator_is_reported_and_skipped(tmp_path, monkeypatch, capsys):
    from launch import results

    monkeypatch.setattr(results, "available", lambda module: False)
    assert results.evaluate_and_report(tmp_path, sys.executable) == 0
    out = capsys.readouterr().out
    assert "python -m evaluator) is not available; scoring skipped" in out
    assert "python -m evaluator.report) is not available; report skipped" in out


def test_a_second_launcher_on_the_same_sweep_is_refused(tmp_path, fake_python):
    path, runs, t = _held_trial(tmp_path)
    args = [str(path), "--runs-dir", str(runs), "--python", fake_python, "--no-eval"]
    first = subprocess.Popen(
        [sys.executable, "-m", "launch", *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.time() + 60
        while t.status().get("state") != "running" and time.time() < deadline:
            time.sleep(0.05)
        second = run_launcher(args)
        assert second.returncode == 2
        assert f"another launcher is running {runs / 'fake'} (pid {first.pid})" in second.stderr
        assert starts(t.workdir) == 1
    finally:
        (t.workdir / "hold").unlink()
        first.communicate(timeout=60)
    assert first.returncode == 0 and t.status()["state"] == "done"
