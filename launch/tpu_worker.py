"""Runs ON a TPU worker: the trainer, detached from the ssh session that started it.

    python -m launch.tpu_worker start --slice=S --worker=all|K --attempt=A [--alone] -- ARGV...
    python -m launch.tpu_worker status            # this VM's trainers, one JSON line each
    python -m launch.tpu_worker stop --workdir=W  # SIGTERM: the trainer saves and says preempted

``start`` (what launch/tpu/run.sh sends, on every worker of a slice or on one) returns at once:

* A trainer for the same workdir already alive on this VM (its pid file under
  ``~/.psweeps/trainers/``) is attached to, not started again: rerunning the launcher, or a
  start sent twice, never makes a second trainer.
* Otherwise the recording worker (worker 0 of ``--worker=all``, or the one worker named) writes
  the trial's status.json: state ``pending`` and a ``tpu`` block ``{"slice", "worker",
  "attempt", "host", "started"}`` (the trainer keeps fields it did not write, so the launcher
  finds its attempt there and knows where the trial runs), then ``supervise`` is spawned in a new
  session and ``start`` exits.

``supervise`` runs the trainer and waits for it. It is detached with ``setsid`` (Python's
``start_new_session``: its own session and process group, stdin from /dev/null, output to a
file), so the hang-up sshd sends its session when the connection drops never reaches it: the
``nohup``/``setsid`` way TPU users start long jobs. ``systemd-run --user`` would also do, but
needs a user systemd instance that outlives the login (``loginctl enable-linger``), which TPU VM
images do not set up. The trainer's output goes to a log on the VM's disk (``~/.psweeps/logs``),
copied into the trial's directory in the bucket every ``LOG_COPY_S`` seconds and at the end
(``train.log``, or ``train.worker<K>.log`` for the other workers of a slice), because gcsfuse
uploads a file only when it is closed. When the trainer exits without recording why (killed,
crashed), the recording worker writes ``failed`` ("trainer exited with code N: <last log
line>"), or ``preempted`` when the supervisor itself was told to stop (SIGTERM: VM shutdown).
Standard library plus the project's own helpers: it starts before anything heavy is imported.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

from launch.procs import last_line, pid_alive
from launch.trials import DONE_STATES
from trainer.files import atomic_write, atomic_write_json, read_json
from trainer.status import now_iso

LOG_COPY_S = 30.0
# A trainer alone on one worker of a slice of several VMs (``--alone``: the launcher's
# --tpu-per-host) must see that VM as the whole TPU, or libtpu waits for the other workers to
# join: the variables as a pytorch/xla maintainer gives them in pytorch/xla#7714 ("set all of the
# topology environment variables as if you were running on one host") and JAX's skye in her
# tpu_topology_env_vars.py gist (process bounds). Every VM of such a slice has 4 chips, 2x2x1.
ALONE_ENV = {
    "TPU_HOST_BOUNDS": "1,1,1",
    "TPU_CHIPS_PER_HOST_BOUNDS": "2,2,1",
    "TPU_PROCESS_BOUNDS": "1,1,1",
    "TPU_CHIPS_PER_PROCESS_BOUNDS": "2,2,1",
    "TPU_WORKER_HOSTNAMES": "localhost",
    "TPU_WORKER_ID": "0",
}
# The worker's index in its slice, as JAX's GCE TPU cluster detection reads it.
METADATA = (
    "http://metadata.google.internal/computeMetadata/v1/instance/attributes/agent-worker-number"
)


def home() -> Path:
    return Path.home() / ".psweeps"


def worker_id(env: dict[str, str] | None = None) -> int:
    """This VM's index in its slice: ``TPU_WORKER_ID`` (JAX's name), else the VM metadata."""
    env = dict(os.environ) if env is None else env
    if env.get("TPU_WORKER_ID", "").isdigit():
        return int(env["TPU_WORKER_ID"])
    req = urllib.request.Request(METADATA, headers={"Metadata-Flavor": "Google"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.read().decode().strip())
    except (OSError, ValueError):
        print("tpu_worker: no worker index in the VM metadata; taking 0", file=sys.stderr)
        return 0


def workdir_of(argv: list[str]) -> Path:
    dirs = [a.split("=", 1)[1] for a in argv if a.startswith("--workdir=")]
    if not dirs:
        raise SystemExit("tpu_worker: the trainer command has no --workdir=")
    return Path(dirs[-1])


def key(workdir: Path) -> str:
    """A file name for ``workdir`` on this VM: ``<sweep>--<trial>-<hash>``."""
    digest = hashlib.sha1(str(workdir).encode()).hexdigest()[:8]
    return f"{workdir.parent.name}--{workdir.name}-{digest}"


def pid_file(workdir: Path) -> Path:
    return home() / "trainers" / f"{key(workdir)}.json"


def alive(record: dict[str, Any] | None) -> bool:
    return bool(record) and pid_alive(record.get("pid"))


def read_status(workdir: Path) -> dict[str, Any]:
    try:
        st = read_json(workdir / "status.json", default=None)
    except (OSError, ValueError):
        return {}
    return st if isinstance(st, dict) else {}


# ----------------------------------------------------------------------------- start


def start(a: argparse.Namespace) -> int:
    argv = a.argv
    workdir = workdir_of(argv)
    record = read_json(pid_file(workdir), default=None)
    if alive(record):
        say("attached", workdir, pid=record["pid"], attempt=record.get("attempt"))
        return 0
    st = read_status(workdir)
    state = st.get("state")
    if state in DONE_STATES:  # every worker checks: none may wait for peers that never start
        say("finished", workdir, state=state)
        return 0
    wid = worker_id() if a.worker == "all" else int(a.worker)
    writer = a.worker != "all" or wid == 0
    tag = "" if writer else f".worker{wid}"
    if writer:
        st.update(
            state="pending",
            error=None,
            updated=now_iso(),
            tpu={
                "slice": a.slice,
                "worker": a.worker,
                "attempt": a.attempt,
                "host": socket.gethostname(),
                "started": now_iso(),
            },
        )
        atomic_write_json(workdir / "status.json", st)
    local_log = home() / "logs" / f"{key(workdir)}{tag}.log"
    local_log.parent.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "launch.tpu_worker", "supervise", f"--workdir={workdir}"]
    cmd += [f"--attempt={a.attempt}", f"--local-log={local_log}", f"--log=train{tag}.log"]
    cmd += [f"--log-copy-s={LOG_COPY_S}"] + (["--alone"] if a.alone else [])
    cmd += ["--writer"] if writer else []
    with open(local_log, "ab") as out:
        proc = subprocess.Popen(
            [*cmd, "--", *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # setsid: no hang-up from the ssh session reaches it
        )
    record = {"pid": proc.pid, "workdir": str(workdir), "attempt": a.attempt, "slice": a.slice}
    record |= {"worker": wid, "started": now_iso(), "log": str(local_log), "argv": argv}
    atomic_write_json(pid_file(workdir), record)
    say("started", workdir, pid=proc.pid, attempt=a.attempt, worker=wid)
    return 0


def say(action: str, workdir: Path, **fields: Any) -> None:
    line = {"action": action, "trial": workdir.name, "host": socket.gethostname(), **fields}
    print(json.dumps(line), flush=True)


# ----------------------------------------------------------------------------- supervise


def copy_log(src: Path, dst: Path) -> None:
    """``dst`` (in the bucket) becomes a copy of ``src``, atomically."""
    try:
        data = src.read_bytes()
    except OSError:
        return
    try:
        atomic_write(dst, lambda f: f.write(data))
    except OSError as e:  # the bucket may be briefly unreachable: the next copy catches up
        print(f"tpu_worker: copying the log to {dst} failed: {e}", file=sys.stderr)


def seed_log(local: Path, bucket: Path) -> None:
    """Start from the bucket's log when it holds more (earlier attempts on other VMs)."""
    try:
        if bucket.stat().st_size > (local.stat().st_size if local.exists() else 0):
            local.write_bytes(bucket.read_bytes())
    except OSError:
        pass


def supervise(a: argparse.Namespace) -> int:
    workdir, local = Path(a.workdir), Path(a.local_log)
    bucket_log = workdir / a.log
    seed_log(local, bucket_log)
    with open(local, "ab") as log:
        log.write(f"=== {now_iso()} {socket.gethostname()}: {shlex.join(a.argv)}\n".encode())
        log.flush()
        env = {**os.environ, **ALONE_ENV} if a.alone else None
        proc = subprocess.Popen(a.argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    signals: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        signals.append(signum)
        proc.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    while True:
        try:
            rc = proc.wait(timeout=a.log_copy_s)
            break
        except subprocess.TimeoutExpired:
            copy_log(local, bucket_log)
    copy_log(local, bucket_log)
    if a.writer:
        record_end(workdir, a.attempt, rc, signals, local)
    return rc


def record_end(workdir: Path, attempt: str, rc: int, signals: list[int], log: Path) -> None:
    """status.json when this attempt's trainer exited without saying how it ended."""
    st = read_status(workdir)
    if (st.get("tpu") or {}).get("attempt") != attempt:
        return  # another start took the trial over
    if st.get("state") not in ("pending", "running"):
        return  # the trainer recorded it (done, failed, diverged, preempted)
    host = socket.gethostname()
    if signals:
        st.update(state="preempted", error=f"stopped by signal {signals[0]} on {host}")
    else:
        why = last_line(log) or "no output"
        st.update(state="failed", error=f"trainer exited with code {rc}: {why}")
    st.update(pid=None, updated=now_iso(), finished=now_iso())
    atomic_write_json(workdir / "status.json", st)


# ----------------------------------------------------------------------------- status, stop


def records() -> list[dict[str, Any]]:
    out = []
    for p in sorted((home() / "trainers").glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        out.append({**rec, "alive": alive(rec)})
    return out


def status(a: argparse.Namespace) -> int:
    for rec in records():
        rec.pop("argv", None)
        print(json.dumps(rec))
    return 0


def stop(a: argparse.Namespace) -> int:
    rec = read_json(pid_file(Path(a.workdir)), default=None)
    if not alive(rec):
        print(f"tpu_worker: no trainer of {a.workdir} runs on this VM")
        return 0
    os.killpg(rec["pid"], signal.SIGTERM)  # the supervisor leads its group; the trainer saves
    print(f"tpu_worker: sent SIGTERM to {a.workdir}'s trainer (pid {rec['pid']})")
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m launch.tpu_worker")
    sub = p.add_subparsers(dest="verb", required=True)
    s = sub.add_parser("start", help="start the trainer detached, or attach to it")
    s.add_argument("--slice", required=True)
    s.add_argument("--worker", default="all", help="all, or this worker's index")
    s.add_argument("--attempt", required=True, help="an id for this start (the launcher's)")
    s.add_argument("--alone", action="store_true", help="this VM's TPU alone (one trial per VM)")
    v = sub.add_parser("supervise", help="(internal) run the trainer and record its end")
    for flag in ("--workdir", "--attempt", "--local-log", "--log"):
        v.add_argument(flag, required=True)
    v.add_argument("--writer", action="store_true")
    v.add_argument("--log-copy-s", type=float, default=LOG_COPY_S)
    v.add_argument("--alone", action="store_true")
    sub.add_parser("status", help="this VM's trainers")
    t = sub.add_parser("stop", help="SIGTERM a trainer (it saves and says preempted)")
    t.add_argument("--workdir", required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cut = argv.index("--") if "--" in argv else len(argv)
    ours, rest = argv[:cut], argv[cut + 1 :]
    a = parser().parse_args(ours)
    a.argv = rest
    if a.verb in ("start", "supervise") and not rest:
        parser().error(f"{a.verb} needs the trainer command after --")
    if a.verb == "start" and a.worker != "all" and not a.worker.isdigit():
        parser().error(f"--worker={a.worker!r} is not allowed; expected all or a worker index")
    return {"start": start, "supervise": supervise, "status": status, "stop": stop}[a.verb](a)


if __name__ == "__main__":
    sys.exit(main())
