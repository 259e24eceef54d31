"""The fake TPU workers' ``.venv/bin/python`` (tests/tpu/fake_gcloud.py puts it there).

``-m launch.tpu_worker ...`` runs the real module from the unpacked project (the current
folder), so the detached start, attach and exit records under test are the real ones.
``-m trainer ... --workdir=W`` "trains" ``FAKE_STEPS`` steps of ``FAKE_STEP_S`` seconds,
saving a checkpoint (``W/ckpt``) after each and resuming from it, like the real trainer; only
the process that would be JAX's process 0 (worker 0, or a trainer alone on its worker) writes
status.json (keeping the fields it did not write, the launcher's ``tpu`` block among them). On
SIGTERM it saves and says ``preempted``. Every trainer appends to ``W/argv.jsonl``: its argv,
worker, slice, the step it resumed from and, at the end, when it stopped. ``FAKE_BARRIER=N``
makes a recording trainer wait (at most 60 s) until N of them run at once, and record how many
it saw: a proof that N trials ran side by side.
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import time
from pathlib import Path


def append(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def write_status(wd: Path, **fields) -> None:
    try:
        st = json.loads((wd / "status.json").read_text())
    except (OSError, ValueError):
        st = {}
    st.update(fields)
    tmp = wd / f".status.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(st))
    os.replace(tmp, wd / "status.json")


def barrier(n: int) -> int:
    """Wait until ``n`` recording trainers run (or 60 s pass); how many were seen."""
    folder = Path(os.environ["FAKE_GCLOUD_DIR"]) / "barrier"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / str(os.getpid())).touch()
    deadline = time.time() + 60
    while time.time() < deadline:
        seen = len(list(folder.iterdir()))
        if seen >= n:
            return seen
        time.sleep(0.05)
    return len(list(folder.iterdir()))


def trainer(args: list[str]) -> int:
    wd = Path([a for a in args if a.startswith("--workdir=")][-1].split("=", 1)[1])
    wd.mkdir(parents=True, exist_ok=True)
    init = [a.split("=", 1)[1] for a in args if a.startswith("--config.distributed.initialize=")]
    worker = int(Path.home().name.lstrip("w") or 0)  # the fake worker's home: .../w<k>
    primary = worker == 0 or init != ["yes"]
    ckpt = wd / "ckpt"
    start = int(ckpt.read_text()) if primary and ckpt.exists() else 0
    steps = int(os.environ.get("FAKE_STEPS", "6"))
    step_s = float(os.environ.get("FAKE_STEP_S", "0.1"))
    run = {"argv": args, "worker": worker, "slice": os.environ.get("FAKE_SLICE", "")}
    run |= {"resumed_from": start, "pid": os.getpid(), "t0": time.time()}
    run["tpu_env"] = {k: v for k, v in os.environ.items() if k.startswith("TPU_")}
    append(wd / "argv.jsonl", run)
    print(f"fake trainer on {run['slice']} worker {worker} from step {start}", flush=True)
    if not primary:  # another process of the same run: it trains, the primary writes
        time.sleep(steps * step_s)
        return 0
    state = {"step": start}

    def on_term(signum, frame):
        ckpt.write_text(str(state["step"]))
        write_status(wd, state="preempted", step=state["step"], error="SIGTERM")
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_term)
    common = {"host": f"{run['slice']}-w{worker}", "pid": os.getpid(), "total_steps": steps}
    write_status(wd, state="running", step=start, error=None, **common)
    if os.environ.get("FAKE_BARRIER"):
        append(wd / "argv.jsonl", {"barrier": barrier(int(os.environ["FAKE_BARRIER"]))})
    for step in range(start, steps):
        state["step"] = step
        write_status(wd, state="running", step=step, **common)
        time.sleep(step_s)
        ckpt.write_text(str(step + 1))
    write_status(wd, state="done", step=steps, **common)
    append(wd / "argv.jsonl", {"end": time.time(), "worker": worker})
    print("fake trainer done", flush=True)
    return 0


def main() -> int:
    args = sys.argv[1:]
    if args[:2] == ["-m", "trainer"]:
        return trainer(args[2:])
    if args[:2] == ["-m", "launch.tpu_worker"]:
        sys.path.insert(0, os.getcwd())
        sys.argv = ["launch.tpu_worker", *args[2:]]
        runpy.run_module("launch.tpu_worker", run_name="__main__", alter_sys=True)
        return 0
    print(f"fake_python: unexpected arguments {args}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
