"""The Slurm launcher: options, sbatch scripts, and runs on a real single-node Slurm.

Tests marked ``slurm`` bring up slurmctld + slurmd + munged on this machine
(tests/slurm/up.sh: Debian packages, daemons started directly, stopped by pid at the end of the
session). They need root and apt; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit  # (imported at collection: its logging binds sys.stdout/stderr once)

from launch import slurm
from launch.__main__ import parser as launch_parser
from launch.trials import LaunchOptions, load_trials, prepare
from sweeps.command import parse_overrides

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
UP, DOWN = HERE / "slurm" / "up.sh", HERE / "slurm" / "down.sh"
FAKE = HERE / "slurm" / "fake_python.py"

TRICKY = {
    "data.source_dir": "/data/my imagenet",
    "perceptual.bapps_dir": '/data/it\'s "bapps" $HOME `x`',
}


def slurm_args(*argv: str) -> argparse.Namespace:
    args, rest = launch_parser().parse_known_args(["smoke", "--launcher", "slurm", *argv])
    assert not rest, rest
    return args


def fake_python(tmp: Path) -> str:
    """An executable standing in for the interpreter (tests/slurm/fake_python.py)."""
    exe = tmp / "fake-python"
    exe.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(str(FAKE))} "$@"\n')
    exe.chmod(0o755)
    return str(exe)


# ----------------------------------------------------------------------------- no cluster needed


@pytest.mark.parametrize(
    "text,minutes",
    [("90", 90), ("1:30", 2), ("4:00:00", 240), ("1-12", 2160), ("2-00:30:00", 2910), ("0:59", 1)],
)
def test_parse_time(text, minutes):
    assert slurm.parse_time(text) == minutes


@pytest.mark.parametrize("text", ["", "abc", "1:2:3:4", "0", "-5", "1h"])
def test_parse_time_rejects(text):
    with pytest.raises(slurm.SlurmError, match="--slurm-time"):
        slurm.parse_time(text)


def test_parse_extra():
    assert slurm.parse_extra(["constraint=a100", "exclusive", "mail_type=END", "x=a=b"]) == {
        "constraint": "a100",
        "exclusive": True,
        "mail-type": "END",
        "x": "a=b",
    }
    with pytest.raises(slurm.SlurmError, match="--slurm-extra"):
        slurm.parse_extra(["=v"])


@pytest.mark.parametrize(
    "flags,match",
    [
        (["--slurm-cpus", "0"], "--slurm-cpus=0"),
        (["--nodes", "0"], "--nodes=0"),
        (["--slurm-mem", "lots"], "--slurm-mem='lots'"),
        (["--slurm-time", "soon"], "--slurm-time='soon'"),
        (["--slurm-array-parallelism", "0"], "--slurm-array-parallelism=0"),
    ],
)
def test_bad_options_one_line(flags, match):
    with pytest.raises(slurm.SlurmError) as e:
        slurm.options_from_args(slurm_args(*flags))
    assert match in str(e.value) and "\n" not in str(e.value)


def test_cli_bad_option_exits_2_before_writing(tmp_path, capsys):
    from launch.__main__ import main

    rc = main(["smoke", "--launcher", "slurm", "--slurm-time", "soon", "--runs-dir", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "--slurm-time" in err
    assert not any(tmp_path.iterdir())


def test_unreachable_controller_exits_2_before_writing(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (
        ("sbatch", "exit 0"),
        ("squeue", "echo 'squeue: error: no controller' >&2; exit 1"),
    ):
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    runs = tmp_path / "runs"
    r = subprocess.run(
        [sys.executable, "-m", "launch", "smoke", "--launcher=slurm", f"--runs-dir={runs}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"},
    )
    err = r.stderr.strip()
    assert r.returncode == 2 and "\n" not in err and "no controller" in err, err
    assert not runs.exists()


def test_dry_run_sbatch_scripts(tmp_path, capsys):
    from launch.__main__ import main

    rc = main(
        [
            "smoke",
            "--launcher=slurm",
            "--dry-run",
            f"--runs-dir={tmp_path}",
            "--slurm-partition=gpu",
            "--slurm-time=2:00:00",
            "--slurm-gpus=1",
            "--slurm-cpus=8",
            "--slurm-mem=64G",
            "--slurm-account=vision",
            "--slurm-qos=high",
            "--slurm-extra=constraint=a100",
            "--slurm-array-parallelism=1",
            "--nodes=2",
            "--ntasks-per-node=4",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert not any(tmp_path.iterdir()), "dry run wrote files"
    trials_part, eval_part = out.split("# ---- evaluator job")
    for line in [
        "#SBATCH --array=0-1%1",
        "#SBATCH --partition=gpu",
        "#SBATCH --time=120",
        "#SBATCH --gpus-per-task=1",
        "#SBATCH --cpus-per-task=8",
        "#SBATCH --mem=64G",
        "#SBATCH --account=vision",
        "#SBATCH --qos=high",
        "#SBATCH --constraint=a100",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --job-name=psweeps-smoke",
        "#SBATCH --signal=USR2@90",
    ]:
        assert line in trials_part.splitlines(), line
    assert "#SBATCH --array" not in eval_part
    assert "#SBATCH --nodes=1" in eval_part.splitlines()
    assert "#SBATCH --gpus-per-task=1" in eval_part.splitlines()
    assert "#SBATCH --job-name=psweeps-smoke-eval" in eval_part.splitlines()
    assert " -m evaluator --runs=" in eval_part and "--watch" in eval_part


def test_rendered_task_commands_parse_back_to_trainer_argv(tmp_path):
    """Overrides with spaces, quotes, $ and backquotes survive the rendered commands."""
    extra = parse_overrides([f"--config.{k}={v}" for k, v in TRICKY.items()])
    assert extra == TRICKY
    trials = load_trials("smoke", "embedded", extra, tmp_path)
    opts = slurm.options_from_args(slurm_args())
    jobs = slurm.plan(trials, LaunchOptions(python="/opt/py thon/bin/python"), opts)
    text = slurm.render(jobs, slurm.job_folder(trials, opts))
    tasks = [ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("# array task")]
    assert [shlex.split(t) for t in tasks] == [t.command("/opt/py thon/bin/python") for t in trials]
    for t in trials:
        argv = t.command("/opt/py thon/bin/python")
        for k, v in TRICKY.items():
            assert f"--config.{k}={v}" in argv


def test_sbatch_script_is_submitits(tmp_path):
    """The dry-run script is the text submitit's executor writes for the same parameters."""

    trials = load_trials("smoke", "embedded", None, tmp_path)
    opts = slurm.options_from_args(slurm_args("--slurm-time=30", "--slurm-cpus=2"))
    job = slurm.plan(trials, LaunchOptions(no_eval=True), opts)[0]
    folder = slurm.job_folder(trials, opts)
    ex = submitit.SlurmExecutor.__new__(submitit.SlurmExecutor)  # no srun here: skip its check
    submitit.core.core.PicklingExecutor.__init__(ex, folder)
    ex.python = shlex.quote(sys.executable)
    ex.update_parameters(**job.parameters)
    ex.parameters["map_count"] = len(job.payloads)  # as submitit does for an array
    assert ex._make_submission_file_text(ex._submitit_command_str, "x") == slurm.sbatch_script(
        job, folder
    )


def test_trial_job_pickles_without_its_process(tmp_path):
    import pickle

    job = slurm.TrialJob(["true"], str(tmp_path), str(tmp_path / "status.json"), "t")
    job._pid = 12345
    clone = pickle.loads(pickle.dumps(job))
    assert clone._pid is None and clone.argvs == [["true"]] and clone.name == "t"


def test_checkpoint_stops_child_and_resubmits_itself(tmp_path, monkeypatch):
    """submitit's time-limit path: checkpoint() SIGTERMs the trainer, waits for its save and
    returns a DelayedSubmission of the same trial."""
    import threading

    monkeypatch.setenv("FAKE_STEPS", "400")
    monkeypatch.setenv("FAKE_STEP_S", "0.05")
    wd = tmp_path / "t"
    argv = [sys.executable, str(FAKE), "-m", "trainer", f"--workdir={wd}"]
    job = slurm.TrialJob(argv, str(tmp_path), str(wd / "status.json"), "t")
    result: dict = {}

    def run():
        try:
            result["codes"] = job()
        except BaseException as e:  # noqa: BLE001 (the thread reports whatever ended it)
            result["error"] = e

    th = threading.Thread(target=run)
    th.start()
    deadline = time.time() + 30
    while time.time() < deadline:
        st = json.loads((wd / "status.json").read_text()) if (wd / "status.json").exists() else {}
        if st.get("step", 0) >= 3:
            break
        time.sleep(0.05)
    delayed = job.checkpoint()
    assert isinstance(delayed, submitit.helpers.DelayedSubmission)
    assert isinstance(delayed.function, slurm.TrialJob) and delayed.function.argvs == [argv]
    st = json.loads((wd / "status.json").read_text())
    assert st["state"] == "preempted" and int((wd / "ckpt").read_text()) >= 3
    th.join(30)
    # Outside Slurm there is nothing to requeue: the trial ends not done, which is an error.
    assert "ended preempted" in str(result.get("error"))


# ----------------------------------------------------------------------------- real Slurm


@pytest.fixture(scope="session")
def slurm_session(tmp_path_factory):
    """A running single-node Slurm for the session; SLURM_CONF and PATH point at it."""
    if os.geteuid() != 0:
        pytest.skip("a real Slurm needs root (to install packages and run slurmd)")
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        pytest.skip("a real Slurm needs apt-get (Debian) to install slurmctld/slurmd")
    root = tmp_path_factory.mktemp("slurm")
    r = subprocess.run(["bash", str(UP), str(root)], capture_output=True, text=True, timeout=900)
    if r.returncode == 2:
        pytest.skip(f"Slurm could not be installed: {r.stderr.strip().splitlines()[-1]}")
    assert r.returncode == 0, r.stdout + r.stderr
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
    os.environ["SLURM_CONF"] = str(root / "slurm.conf")
    os.environ["PATH"] = f"{root / 'bin'}:{os.environ['PATH']}"
    try:
        yield root
    finally:
        subprocess.run(["bash", str(DOWN), str(root)], capture_output=True, timeout=120)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture()
def slurm_cluster(slurm_session):
    """The session's Slurm, with an empty queue after each test (a failed test leaves no jobs
    behind for the next one)."""
    yield slurm_session
    subprocess.run(["scancel", "--full", "--user=root"], check=False, capture_output=True)
    deadline = time.time() + 60
    while (
        time.time() < deadline
        and subprocess.run(
            ["squeue", "-h"], capture_output=True, text=True, check=False
        ).stdout.strip()
    ):
        time.sleep(0.5)


_PENDING_SINCE: dict[str, float] = {}


def release_requeued(job_ids):
    """Slurm holds a requeued batch job for ~2 minutes (its BeginTime); on the test cluster
    start it sooner. Not before the node has finished the job's previous run: a release while it
    is still completing lets that run's exit code end the new one (measured: FAILED)."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %T %r"], capture_output=True, text=True, check=False
    ).stdout
    node = subprocess.run(
        ["scontrol", "show", "node", "-o"], capture_output=True, text=True, check=False
    ).stdout
    for line in out.splitlines():
        jid, state, reason = (line.split() + ["", "", ""])[:3]
        if state == "PENDING" and reason == "BeginTime" and jid.split("_")[0] in job_ids:
            since = _PENDING_SINCE.setdefault(jid, time.time())
            if time.time() - since >= 2.0 and "COMPLETING" not in node:
                subprocess.run(["scontrol", "update", f"JobId={jid}", "StartTime=now"], check=False)
                _PENDING_SINCE.pop(jid, None)


def wait_queue_empty(job_ids, timeout_s, until=lambda: True):
    """Until ``until()`` holds and every one of ``job_ids`` has ended (launch.slurm.active_jobs),
    releasing requeued ones at once; two answers in a row. ``until`` (e.g. the trial is done)
    guards against a look at the queue in the middle of a requeue, which a busy machine can
    stretch."""
    deadline, ended, active = time.time() + timeout_s, 0, None
    while time.time() < deadline:
        release_requeued(job_ids)
        active = slurm.active_jobs(job_ids)
        ended = ended + 1 if active == [] and until() else 0
        if ended >= 2:
            return
        time.sleep(0.5 if ended == 0 else 1.0)
    raise AssertionError(f"jobs {job_ids} have not ended after {timeout_s} s: {active}")


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def start_fake_trial(tmp_path, monkeypatch, steps, until_step):
    """One smoke trial of the fake trainer (``steps`` steps of 0.1 s) submitted without the
    evaluator, once it has reached ``until_step`` (or after 60 s): ``(trial, job, resubmit)``,
    ``resubmit()`` submitting the same trial with the same options again."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_STEPS", str(steps))
    monkeypatch.setenv("FAKE_STEP_S", "0.1")
    python = fake_python(tmp_path)
    trials = load_trials("smoke", "embedded", None, tmp_path / "runs")[:1]
    prepare(trials, python)
    opts = slurm.options_from_args(slurm_args("--slurm-cpus=1", "--slurm-time=10"))
    options = LaunchOptions(python=python, no_eval=True)
    (job,) = slurm.submit(trials, options, opts)
    t = trials[0]
    deadline = time.time() + 60
    while time.time() < deadline and (t.status().get("step") or 0) < until_step:
        time.sleep(0.1)
    return t, job, lambda: slurm.submit(trials, options, opts)


@pytest.mark.slurm
def test_sweep_through_slurm_keeps_argv_intact(slurm_cluster, tmp_path, monkeypatch):
    """A 2-trial sweep as one job array plus the evaluator job; each trainer gets exactly
    Trial.command() (overrides with spaces and quotes included); rerunning submits nothing."""
    monkeypatch.chdir(tmp_path)
    python = fake_python(tmp_path)
    extra = parse_overrides([f"--config.{k}={v}" for k, v in TRICKY.items()])
    trials = load_trials("smoke", "embedded", extra, tmp_path / "runs")
    prepare(trials, python)
    args = slurm_args("--slurm-cpus=1", "--slurm-time=10", "--slurm-eval-poll=1")
    opts = slurm.options_from_args(args)
    before = slurm.plan(trials, LaunchOptions(python=python), opts)
    expected = slurm.sbatch_script(before[0], slurm.job_folder(trials, opts))
    jobs = slurm.submit(trials, LaunchOptions(python=python), opts)
    assert len(jobs) == 3 and jobs[0].job_id.endswith("_0") and jobs[1].job_id.endswith("_1")
    # the queue refuses a second submission of the same sweep while its jobs are there
    with pytest.raises(slurm.SlurmError, match="already has Slurm jobs in the queue"):
        slurm.submit(trials, LaunchOptions(python=python), opts)
    wait_queue_empty([j.job_id.split("_")[0] for j in jobs], 120)

    for t in trials:
        runs = read_jsonl(t.workdir / "argv.jsonl")
        assert [r["argv"] for r in runs] == [t.command(python)[1:]]
        assert t.status()["state"] == "done"
        assert (t.workdir / "train.log").exists()
    calls = read_jsonl(tmp_path / "runs" / "smoke" / "evaluator_calls.jsonl")
    assert calls[0]["argv"][:3] == ["-m", "evaluator", f"--runs={tmp_path / 'runs' / 'smoke'}"]
    assert "--watch" in calls[0]["argv"]
    assert calls[-1]["argv"][:2] == ["-m", "evaluator.report"]
    # the submitted array script is the dry-run's
    array_id = jobs[0].job_id.split("_")[0]
    folder = Path(str(slurm.job_folder(trials, opts)).replace("%j", array_id))
    assert (folder / f"{array_id}_submission.sh").read_text() == expected
    plan = slurm.plan(trials, LaunchOptions(python=python), opts)  # all done now: eval only
    assert [j.kind for j in plan] == ["eval"]
    # rerun: nothing left to train, only the evaluator is submitted
    again = slurm.submit(trials, LaunchOptions(python=python, no_eval=True), opts)
    assert again == []


@pytest.mark.slurm
@pytest.mark.parametrize("how", ["scancel-TERM", "scancel-USR2", "scontrol-requeue"])
def test_interrupted_trial_is_requeued_and_resumes(slurm_cluster, tmp_path, monkeypatch, how):
    """SIGTERM (preemption), USR2 (submitit's time-limit warning) or an outside requeue in the
    middle of training: the trainer saves, the job is requeued, and the trial resumes to done."""
    t, job, _ = start_fake_trial(tmp_path, monkeypatch, steps=100, until_step=5)
    assert t.status().get("state") == "running", t.status()
    if how == "scontrol-requeue":
        subprocess.run(["scontrol", "requeue", job.job_id], check=True)
    else:
        sig = how.split("-")[1]
        subprocess.run(["scancel", f"--signal={sig}", job.job_id], check=True)
    wait_queue_empty([job.job_id], 120, until=lambda: t.status().get("state") == "done")

    runs = read_jsonl(t.workdir / "argv.jsonl")
    assert len(runs) == 2, runs
    assert runs[0]["resumed_from"] == 0 and runs[1]["resumed_from"] >= 5
    assert runs[0]["job"] == runs[1]["job"] == job.job_id  # the same job, requeued
    assert t.status()["state"] == "done" and t.status()["step"] == 100


@pytest.mark.slurm
def test_cancelled_trial_stays_cancelled(slurm_cluster, tmp_path, monkeypatch):
    """``scancel`` (no --signal) stops the trial (saved, preempted) and is not undone by a
    requeue: the next ``make sweep`` resumes it."""
    t, job, _ = start_fake_trial(tmp_path, monkeypatch, steps=100, until_step=3)
    subprocess.run(["scancel", job.job_id], check=True)
    wait_queue_empty([job.job_id], 60)
    time.sleep(1)
    assert t.status()["state"] == "preempted"
    assert len(read_jsonl(t.workdir / "argv.jsonl")) == 1


@pytest.mark.slurm
@pytest.mark.slow
def test_smoke_sweep_through_slurm_with_a_preempted_trial(slurm_cluster, tmp_path):
    """`python -m launch smoke --launcher slurm` with the real trainer and evaluator; one trial
    gets SIGTERM mid-training, saves, is requeued and resumes from its checkpoint."""
    runs = tmp_path / "runs"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "launch",
            "smoke",
            "--launcher=slurm",
            f"--runs-dir={runs}",
            "--slurm-cpus=1",
            "--slurm-eval-cpus=1",
            "--slurm-eval-poll=2",
            "--slurm-time=15",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    ids = dict(re.findall(r"\[slurm\] (\S+): job (\S+),", r.stdout))
    assert set(ids) == {"depth-2", "depth-6", "evaluator"}, r.stdout
    trials = {t.name: t for t in load_trials("smoke", runs_dir=runs)}
    victim = trials["depth-6"]
    deadline = time.time() + 400  # generous: the machine may be busy with other tests
    while time.time() < deadline and (victim.status().get("step") or 0) < 25:
        assert victim.status().get("state") not in ("done", "failed"), victim.status()
        time.sleep(0.2)
    subprocess.run(["scancel", "--signal=TERM", ids["depth-6"]], check=True)
    wait_queue_empty(
        sorted({j.split("_")[0] for j in ids.values()}),
        600,
        until=lambda: all(t.status().get("state") in ("done", "failed") for t in trials.values()),
    )

    log = victim.log_path.read_text()
    assert log.count("\n=== ") == 2 and "resumed from checkpoint" in log, log[-2000:]
    for t in trials.values():
        st = t.status()
        assert st["state"] == "done" and st["step"] == st["total_steps"] == 80, st
        scored = sorted(int(p.stem) for p in (t.workdir / "perceptual").glob("*.json"))
        assert scored and scored[-1] == 80, scored
        rec = json.loads((t.workdir / "perceptual" / "80.json").read_text())
        assert rec["error"] is None and rec["benchmarks"]
    assert (runs / "smoke" / "report.md").exists() and (runs / "smoke" / "results.csv").exists()


@pytest.mark.slurm
def test_trial_spans_several_tasks(slurm_cluster, tmp_path, monkeypatch):
    """--ntasks-per-node=2: every task runs the same trainer command with its own SLURM_PROCID
    (what jax.distributed.initialize() reads); only rank 0 writes the trial's train.log."""
    monkeypatch.chdir(tmp_path)
    python = fake_python(tmp_path)
    trials = load_trials("smoke", "embedded", None, tmp_path / "runs")[:1]
    prepare(trials, python)
    args = slurm_args("--slurm-cpus=1", "--ntasks-per-node=2", "--slurm-time=10")
    (job,) = slurm.submit(
        trials, LaunchOptions(python=python, no_eval=True), slurm.options_from_args(args)
    )
    wait_queue_empty([job.job_id], 120)
    t = trials[0]
    runs = read_jsonl(t.workdir / "argv.jsonl")
    assert sorted(r["rank"] for r in runs) == ["0", "1"]
    assert {r["ntasks"] for r in runs} == {"2"}
    assert all(r["argv"] == t.command(python)[1:] for r in runs)
    assert t.status()["state"] == "done"
    assert t.log_path.read_text().count("\n=== ") == 1


@pytest.mark.slurm
def test_cli_slurm_wait(slurm_cluster, tmp_path):
    """`python -m launch ... --launcher slurm --slurm-wait` returns once the queue is empty,
    with the status table and exit 0 when every trial is done; a second run has nothing to do."""
    python = fake_python(tmp_path)
    argv = [
        sys.executable,
        "-m",
        "launch",
        "smoke",
        "--launcher=slurm",
        f"--runs-dir={tmp_path / 'runs'}",
        f"--python={python}",
        "--no-eval",
        "--slurm-cpus=1",
        "--slurm-time=5",
        "--slurm-wait",
    ]
    r = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "2 trials: 2 done" in r.stdout
    for t in load_trials("smoke", runs_dir=tmp_path / "runs"):
        assert t.status()["state"] == "done"
    again = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "nothing to submit" in again.stdout, again.stdout


def test_to_run_counts_a_stale_running_trial(tmp_path):
    trials = load_trials("smoke", "embedded", None, tmp_path / "runs")
    prepare(trials)
    trials[0].write_status(state="done")
    trials[1].write_status(state="running", host="node-17", pid=4242)
    assert [t.name for t in slurm.to_run(trials)] == [trials[1].name]


@pytest.mark.slurm
def test_killed_trial_is_resubmitted_by_the_next_run(slurm_cluster, tmp_path, monkeypatch):
    """A trainer killed outright (SIGKILL: no save, status stays 'running') is submitted again
    by the next run, and the trial resumes from its last checkpoint."""
    t, job, resubmit = start_fake_trial(tmp_path, monkeypatch, steps=60, until_step=5)
    (t.workdir / "ckpt").write_text("5")  # the last checkpoint the fake trainer resumes from
    os.kill(t.status()["pid"], signal.SIGKILL)  # e.g. the OOM killer: no save, no last word
    wait_queue_empty([job.job_id], 60)
    assert t.status()["state"] == "running"
    (job2,) = resubmit()
    wait_queue_empty([job2.job_id], 120, until=lambda: t.status().get("state") == "done")
    runs = read_jsonl(t.workdir / "argv.jsonl")
    assert [r["resumed_from"] for r in runs] == [0, 5]
    assert t.status()["state"] == "done"


@pytest.mark.slurm
def test_evaluator_job_killed_by_sigterm_runs_again(slurm_cluster, tmp_path):
    """The evaluator's job (a plain Command): a SIGTERM from Slurm ends the evaluator, the job
    requeues itself and the evaluator starts over (it resumes from its result files)."""
    marks = tmp_path / "starts.txt"
    code = (
        "import pathlib, sys, time\n"
        f"p = pathlib.Path({str(marks)!r})\n"
        "n = len(p.read_text().splitlines()) if p.exists() else 0\n"
        "p.open('a').write('start\\n')\n"
        "time.sleep(60 if n == 0 else 0)\n"
    )
    ex = submitit.SlurmExecutor(folder=tmp_path / "jobs" / "%j")
    ex.update_parameters(time=5, cpus_per_task=1)
    job = ex.submit(slurm.Command([[sys.executable, "-c", code]], str(tmp_path)))
    deadline = time.time() + 60
    while time.time() < deadline and not marks.exists():
        time.sleep(0.1)
    subprocess.run(["scancel", "--signal=TERM", job.job_id], check=True)
    wait_queue_empty([job.job_id], 120, until=lambda: len(marks.read_text().splitlines()) == 2)
    assert marks.read_text().splitlines() == ["start", "start"]
    assert job.result() == [0]
