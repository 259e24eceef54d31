"""Stands in for ``gcloud`` in the TPU launcher tests: records every call and simulates slices.

State lives in ``$FAKE_GCLOUD_DIR``: ``calls.jsonl`` (one argv per line), ``nodes/<name>.json``
(a slice: type, state, workers; queued resources too), ``hosts/<name>/w<k>/`` (each worker's
home), ``gcs/<bucket>/`` (the bucket, which every worker sees at ``/gcs/<bucket>`` as gcsfuse
would give it: ``/gcs/`` in a command is rewritten to this folder) and ``instances/`` (CPU VMs).

* ``tpu-vm create`` / ``queued-resources create`` make a READY (ACTIVE) slice with the workers
  its type has (``WORKERS``, written out here, not taken from the code under test); creating a
  name made before waits ``FAKE_RECREATE_S`` seconds (a slow recreation); the names in
  ``FAKE_CREATE_FAILS`` (comma-separated) never come up (no capacity).
* ``tpu-vm ssh --worker=all|K --command=C`` runs ``bash -c C`` on each worker at once, with HOME
  the worker's home and ``TPU_WORKER_ID`` its index; the worker_setup.sh command is replaced by
  unpacking the tarball (once per tarball, shared) and a ``.venv/bin/python`` that runs
  tests/tpu/fake_python.py.
* ``tpu-vm delete`` / ``queued-resources delete`` kill the slice's processes and forget it;
  ``__preempt NAME`` (tests only) marks it PREEMPTED (queued: SUSPENDED) and kills them, as a
  spot VM's loss does.
* ``storage rsync SRC DST`` copies the bucket folder, skipping paths ``--exclude`` matches.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKERS = {"v4-8": 1, "v4-16": 2, "v4-32": 4, "v5litepod-16": 4, "v6e-8": 1}
ROOT = Path(os.environ["FAKE_GCLOUD_DIR"])


def flag(args: list[str], name: str, default: str = "") -> str:
    vals = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
    return vals[-1] if vals else default


def positional(args: list[str]) -> list[str]:
    return [a for a in args if not a.startswith("-")]


def node_path(name: str) -> Path:
    return ROOT / "nodes" / f"{name}.json"


def read_node(name: str) -> dict | None:
    try:
        return json.loads(node_path(name).read_text())
    except FileNotFoundError:
        return None


def write_node(name: str, node: dict) -> None:
    p = node_path(name)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(node))
    os.replace(tmp, p)


def kill_workers(name: str) -> None:
    """SIGKILL every process the slice's workers started (their supervisors lead a group)."""
    for pid_file in (ROOT / "hosts" / name).glob("w*/.psweeps/trainers/*.json"):
        try:
            os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
        except (OSError, ValueError, KeyError):
            pass


def create(name: str, args: list[str], queued: bool) -> int:
    if read_node(name):
        print(f"ERROR: {name} already exists", file=sys.stderr)
        return 1
    if name in os.environ.get("FAKE_CREATE_FAILS", "").split(","):
        print(f"ERROR: RESOURCE_EXHAUSTED: no capacity for {name}", file=sys.stderr)
        return 1
    accel = flag(args, "accelerator-type")
    if accel not in WORKERS:
        print(f"ERROR: INVALID_ARGUMENT accelerator type {accel}", file=sys.stderr)
        return 1
    made = ROOT / "made" / name
    if made.exists():
        time.sleep(float(os.environ.get("FAKE_RECREATE_S", "0")))
    made.parent.mkdir(parents=True, exist_ok=True)
    made.write_text(str(int(made.read_text() if made.exists() else "0") + 1))
    version = flag(args, "runtime-version" if queued else "version")
    node = {"type": accel, "version": version, "state": "READY", "workers": WORKERS[accel]}
    write_node(name, {**node, "queued": queued, "qr_state": "ACTIVE", "spot": "--spot" in args})
    return 0


def delete(name: str) -> int:
    if not read_node(name):
        print(f"ERROR: {name} NOT_FOUND", file=sys.stderr)
        return 1
    kill_workers(name)
    node_path(name).unlink()
    shutil.rmtree(ROOT / "hosts" / name, ignore_errors=True)
    return 0


def setup_worker(home: Path) -> None:
    """worker_setup.sh, faked: the unpacked tree (shared) and a venv python that fakes."""
    tarball = home / "perceptual-sweeps.tar.gz"
    digest = hashlib.sha1(tarball.read_bytes()).hexdigest()[:12]
    tree = ROOT / "trees" / digest
    if not tree.exists():
        tmp = tree.with_name(f".{digest}.{os.getpid()}")
        with tarfile.open(tarball) as tar:
            tar.extractall(tmp, filter="data")
        venv = tmp / ".venv" / "bin"
        venv.mkdir(parents=True)
        (venv / "python").write_text(
            f'#!/bin/sh\nexec {sys.executable} {HERE / "fake_python.py"} "$@"\n'
        )
        (venv / "python").chmod(0o755)
        try:
            os.rename(tmp, tree)
        except OSError:  # another worker unpacked it first
            shutil.rmtree(tmp, ignore_errors=True)
    link = home / "perceptual-sweeps"
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(tree)


def ssh(name: str, args: list[str]) -> int:
    node = read_node(name)
    if not node or node["state"] != "READY":
        print(f"ssh: connect to {name}: not reachable", file=sys.stderr)
        return 255
    which = flag(args, "worker", "0")
    workers = range(node["workers"]) if which == "all" else [int(which)]
    command = flag(args, "command").replace("/gcs/", f"{ROOT}/gcs/")
    procs = []
    for k in workers:
        home = ROOT / "hosts" / name / f"w{k}"
        home.mkdir(parents=True, exist_ok=True)
        if "worker_setup.sh" in command:
            setup_worker(home)
            continue
        env = {**os.environ, "HOME": str(home), "TPU_WORKER_ID": str(k), "FAKE_SLICE": name}
        procs.append(subprocess.Popen(["bash", "-c", command], cwd=home, env=env))
    return max([p.wait() for p in procs], default=0)


def scp(args: list[str]) -> int:
    src, dst = positional(args)[-2:]
    name, _, path = dst.partition(":")
    node = read_node(name)
    if not node:
        return 1
    which = flag(args, "worker", "0")
    for k in range(node["workers"]) if which == "all" else [int(which)]:
        home = ROOT / "hosts" / name / f"w{k}"
        home.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, home / path)
    return 0


def tpus(kind: str, verb: str, args: list[str]) -> int:
    queued = kind == "queued-resources"
    name = (positional(args) or [""])[0]
    if verb == "create":
        return create(name, args, queued)
    if verb == "delete":
        return delete(name)
    if verb == "describe":
        node = read_node(name)
        if not node or (queued and not node["queued"]):
            print(f"ERROR: {name} NOT_FOUND", file=sys.stderr)
            return 1
        print(node["qr_state"] if queued else node["state"])
        return 0
    if verb == "list":
        for p in sorted((ROOT / "nodes").glob("*.json")):
            node = json.loads(p.read_text())
            if node["queued"] == queued:
                print(f"{p.stem}\t{node['qr_state'] if queued else node['state']}")
        return 0
    if verb == "ssh":
        return ssh(name, args)
    if verb == "scp":
        return scp(args)
    print(f"fake gcloud: unknown verb {verb}", file=sys.stderr)
    return 2


def rsync(args: list[str]) -> int:
    src, dst = positional(args)[-2:]
    exclude = flag(args, "exclude")
    source = ROOT / "gcs" / src[len("gs://") :]
    for f in sorted(source.rglob("*")) if source.is_dir() else []:
        rel = f.relative_to(source).as_posix()
        if f.is_file() and not (exclude and re.match(exclude, rel)):
            (Path(dst) / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, Path(dst) / rel)
    return 0


def instances(verb: str, args: list[str]) -> int:
    name = (positional(args) or [""])[0]
    marker = ROOT / "instances" / name
    if verb == "create":
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    elif verb == "describe":
        return 0 if marker.exists() else 1
    elif verb == "delete":
        marker.unlink(missing_ok=True)
    return 0


def preempt(name: str) -> int:
    node = read_node(name)
    if not node:
        return 1
    write_node(name, {**node, "state": "PREEMPTED", "qr_state": "SUSPENDED"})
    kill_workers(name)
    return 0


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--project=")]
    ROOT.mkdir(parents=True, exist_ok=True)
    with open(ROOT / "calls.jsonl", "a") as f:
        f.write(json.dumps(argv) + "\n")
    words = positional(args)
    if words[:1] == ["__preempt"]:
        return preempt(words[1])
    if words[:2] == ["storage", "rsync"]:
        return rsync(args)
    if words[:2] == ["compute", "tpus"]:
        return tpus(words[2], words[3], args[args.index(words[3]) + 1 :])
    if words[:2] == ["compute", "instances"]:
        return instances(words[2], args[args.index(words[2]) + 1 :])
    if words[:2] in (["compute", "ssh"], ["compute", "scp"]):
        return 0  # the evaluator's VM: recorded, nothing run
    print(f"fake gcloud: unexpected {argv}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
