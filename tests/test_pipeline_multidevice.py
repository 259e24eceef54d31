"""The input pipeline on several devices and several JAX processes (CPU, subprocesses).

One process with 4 CPU devices checks sharded batches, eval padding to a multiple of the device
count and device-resident gathers; two processes (jax.distributed, 2 devices each) check that each
process supplies exactly its own rows and the global batch is the one a single process builds.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

COMMON = textwrap.dedent(
    """
    import sys
    import numpy as np
    import jax
    from sweeps.base import config_from
    from trainer.data import DataError, Split
    from trainer.augment import augment
    from trainer.pipeline import TrainInput, eval_batches

    def make_split(n=103, size=8):
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
        images[:, 0, 0, 0] = np.arange(n) % 256
        images[:, 0, 0, 1] = np.arange(n) // 256
        labels = (np.arange(n) % 5).astype(np.int32)
        return Split(images=images, labels=labels, meta={"num_classes": 5, "count": n})

    def decode(x):
        x = np.asarray(x)
        return x[:, 0, 0, 0].astype(np.int64) + 256 * x[:, 0, 0, 1].astype(np.int64)

    def cfg(**kw):
        return config_from("embedded", {f"data.{k}": v for k, v in kw.items()}).data
    """
)

FOUR_DEVICES = textwrap.dedent(
    """
    jax.config.update("jax_num_cpu_devices", 4)
    split = make_split()
    for mesh in (jax.make_mesh((4,), ("data",)),
                 jax.sharding.Mesh(np.array(jax.devices()), ("data",)),
                 jax.make_mesh((2, 2), ("data", "model"))):
        n_data = mesh.shape["data"]
        host = TrainInput(split, cfg(device_resident="no"), 8, 1, mesh)
        dev = TrainInput(split, cfg(device_resident="yes"), 8, 1, mesh)
        for step in (0, 11, 12, 13, 40):
            hx, hy = host.get(step)
            dx, dy = dev.get(step)
            idx = host.batch_indices(step)
            assert len(hx.addressable_shards) == 4, hx.sharding
            for shard in hx.addressable_shards:
                rows = shard.index[0]
                assert rows.stop - rows.start == 8 // n_data
                assert (decode(shard.data) == idx[rows]).all()
            assert (np.asarray(hx) == np.asarray(dx)).all()
            assert (np.asarray(hy) == np.asarray(dy)).all()
            assert (decode(dx) == idx).all()
        y = jax.jit(lambda k, x: augment(k, x, cfg(crop="random_resized")))(jax.random.key(0), hx)
        assert y.shape == (8, 8, 8, 3) and y.dtype == np.float32
        sizes, seen, total = set(), [], 0.0
        for images, labels, mask in eval_batches(split, 10, mesh):
            sizes.add(images.shape[0])
            m = np.asarray(mask)
            seen += decode(images)[m > 0].tolist()
            total += float(jax.jit(lambda m: m.sum())(mask))
        rounded = -(-10 // n_data) * n_data
        assert sizes == {rounded}, (sizes, rounded)
        assert total == 103 and sorted(seen) == list(range(103))
        try:
            TrainInput(split, cfg(), 10 if n_data == 4 else 9, 1, mesh)
        except DataError as e:
            assert f"multiple of the {n_data} devices" in str(e), e
        else:
            raise AssertionError("batch not divisible by the data axis was accepted")
    print("OK")
    """
)

TWO_PROCESSES = textwrap.dedent(
    """
    pid, port = int(sys.argv[1]), sys.argv[2]
    jax.config.update("jax_num_cpu_devices", 2)
    jax.distributed.initialize(f"127.0.0.1:{port}", num_processes=2, process_id=pid)
    assert jax.process_count() == 2 and len(jax.devices()) == 4
    mesh = jax.make_mesh((4,), ("data",))
    split = make_split()
    replicate = jax.jit(lambda x: x, out_shardings=jax.sharding.NamedSharding(
        mesh, jax.sharding.PartitionSpec()))
    for resident in ("no", "yes"):
        ti = TrainInput(split, cfg(device_resident=resident, prefetch=2), 12, 7, mesh)
        assert ti.rows == slice(6 * pid, 6 * pid + 6), ti.rows
        for step, x, y in [next(ti.iterate(s)) for s in (0, 8, 9)]:
            idx = ti.batch_indices(step)
            local = sorted((s.index[0].start, decode(s.data).tolist()) for s in x.addressable_shards)
            assert [r for _, rows in local for r in rows] == idx[ti.rows].tolist()
            full = replicate(x)
            full.block_until_ready()
            assert (decode(full) == idx).all()
            labels = replicate(y)
            labels.block_until_ready()
            assert (np.asarray(labels) == split.labels[idx]).all()
        ti.close()
    total = 0.0
    for images, labels, mask in eval_batches(split, 10, mesh):
        s = jax.jit(lambda m: m.sum(), out_shardings=jax.sharding.NamedSharding(
            mesh, jax.sharding.PartitionSpec()))(mask)
        total += float(s)
    assert total == 103, total
    print("OK", pid)
    """
)


def _env():
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
    env.pop("XLA_FLAGS", None)
    return env


def test_four_devices_one_process():
    r = subprocess.run(
        [sys.executable, "-c", COMMON + FOUR_DEVICES],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0 and r.stdout.strip().endswith("OK"), r.stderr[-3000:]


@pytest.mark.multiprocess
def test_two_processes_each_supply_their_rows():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", COMMON + TWO_PROCESSES, str(pid), str(port)],
            cwd=ROOT,
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for pid in (0, 1)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=240))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for pid, (p, (out, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0 and f"OK {pid}" in out, err[-3000:]
