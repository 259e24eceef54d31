"""Input pipeline: deterministic, resumable batches from a prepared split, augmented on device.

* ``TrainInput``: batch ``step`` is rows ``perm(seed, epoch)[k*B:(k+1)*B]`` of the split
  (epoch = step // steps_per_epoch, k = step % steps_per_epoch, the remainder of each epoch
  dropped; perm from numpy's PCG64 seeded with (seed, epoch)), so any step can be rebuilt after a
  restart. Each process reads only the rows its devices hold and the global batch is assembled
  with ``jax.make_array_from_process_local_data``. A split that fits in the accelerator's memory
  can be kept there and gathered by a jitted function instead (same batches).
* ``normalize``: the pixel normalisation (also used by the evaluator); the training
  augmentation and the eval preprocessing (``data.eval_crop``) are trainer/augment.py.
* ``eval_batches``: every example once, the last batch padded and masked.
"""

from __future__ import annotations

import math
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from trainer.data import DataError, Split
from trainer.data.normalize import normalize

__all__ = [
    "DATA_AXIS",
    "make_mesh",
    "TrainInput",
    "epoch_permutation",
    "eval_batches",
    "normalize",
    "process_rows",
]

DATA_AXIS = "data"
RESIDENT_FRACTION = 0.4  # auto device residency: the split may take this much of one device


def make_mesh(devices: Any = None) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process) with the data axis."""
    return Mesh(np.array(jax.devices() if devices is None else devices), (DATA_AXIS,))


def epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of the split's rows in ``epoch``: numpy PCG64 seeded with (seed, epoch)."""
    return np.random.Generator(np.random.PCG64([int(seed), int(epoch)])).permutation(n)


def process_rows(
    device_rows: Iterable[tuple[int, slice]], process_index: int, global_batch: int
) -> slice:
    """The contiguous rows of a global batch that process ``process_index`` supplies.

    ``device_rows``: ``(device.process_index, row slice)`` for every device of the sharding
    (``sharding.devices_indices_map``); devices that replicate a slice give it once.
    """
    spans = sorted(
        {
            (s.start or 0, global_batch if s.stop is None else s.stop)
            for p, s in device_rows
            if p == process_index
        }
    )
    if not spans:
        raise DataError(f"process {process_index} holds no device of the mesh's data axis")
    start, stop = spans[0]
    for a, b in spans[1:]:
        if a != stop:
            raise DataError(
                f"process {process_index} holds rows {spans} of the batch, not one contiguous "
                f"range; order the mesh's devices by process"
            )
        stop = b
    return slice(start, stop)


def _batch_sharding(mesh: Mesh, batch: int, what: str) -> NamedSharding:
    if DATA_AXIS not in mesh.shape:
        raise DataError(
            f"the mesh has axes {tuple(mesh.shape)}; the input needs a {DATA_AXIS!r} axis"
        )
    n = mesh.shape[DATA_AXIS]
    if batch % n:
        raise DataError(f"{what}={batch} must be a multiple of the {n} devices on the data axis")
    return NamedSharding(mesh, P(DATA_AXIS))


def _local_rows(sharding: NamedSharding, global_shape: tuple[int, ...]) -> slice:
    device_rows = [
        (d.process_index, idx[0]) for d, idx in sharding.devices_indices_map(global_shape).items()
    ]
    return process_rows(device_rows, jax.process_index(), global_shape[0])


def _gather_rows(images: np.ndarray, labels: np.ndarray, rows: np.ndarray):
    """``images[rows]``, reading a memmap in increasing row order (sequential disk access)."""
    order = np.argsort(rows, kind="stable")
    out = np.empty((len(rows), *images.shape[1:]), images.dtype)
    out[order] = images[rows[order]]
    return out, np.asarray(labels[rows], np.int32)


def auto_resident(nbytes: int, fraction: float = RESIDENT_FRACTION) -> bool:
    """``data.device_resident=auto``'s rule: whether a split of ``nbytes`` goes on the device
    (an accelerator whose first local device holds it within ``fraction``; never on CPU)."""
    device = jax.local_devices()[0]
    if device.platform == "cpu":
        return False
    limit = (device.memory_stats() or {}).get("bytes_limit", 0)
    return bool(limit) and nbytes <= fraction * limit


class TrainInput:
    """Training batches of ``split`` for a global batch of ``global_batch`` over ``mesh``.

    ``get(step)`` -> ``(images, labels)``: global jax Arrays sharded over the mesh's "data" axis,
    uint8 (B,H,W,3) and int32 (B,). ``iterate(start_step)`` yields ``(step, images, labels)``
    forever, prefetching ``data_cfg.prefetch`` host batches in a background thread.
    ``data_cfg.device_resident``: yes | no | auto (yes on an accelerator whose memory holds the
    split within ``resident_fraction``; never on CPU unless yes).
    """

    def __init__(
        self,
        split: Split,
        data_cfg: Any,
        global_batch: int,
        seed: int,
        mesh: Mesh,
        *,
        resident_fraction: float = RESIDENT_FRACTION,
    ):
        self.split = split
        self.seed = int(seed)
        self.global_batch = int(global_batch)
        self.num_examples = split.num_examples
        if not 1 <= self.global_batch <= self.num_examples:
            raise DataError(
                f"train.batch_size={global_batch} must be in [1, {self.num_examples}] "
                f"(the examples in the train split)"
            )
        self.steps_per_epoch = self.num_examples // self.global_batch
        self.prefetch = int(data_cfg.prefetch)
        self.sharding = _batch_sharding(mesh, self.global_batch, "train.batch_size")
        self.image_shape = (self.global_batch, *split.images.shape[1:])
        self.rows = _local_rows(self.sharding, self.image_shape)
        self._perm: tuple[int, np.ndarray] = (-1, np.empty(0, np.int64))
        self._iterators: list[Iterator] = []
        self.device_resident = self._resident(data_cfg.device_resident, resident_fraction)
        if self.device_resident:
            rep = NamedSharding(mesh, P())
            self._replicated = rep
            # The whole split, replicated on every device: (images, labels).
            self.device_split = (
                jax.make_array_from_process_local_data(rep, np.asarray(split.images)),
                jax.make_array_from_process_local_data(rep, np.asarray(split.labels, np.int32)),
            )
            # The gather runs on the device; a train step may also call it (with device_split
            # and device_indices(step)) inside its own jit, fusing it with the step.
            self.gather = jax.jit(
                lambda images, labels, idx: (images[idx], labels[idx]),
                out_shardings=(self.sharding, self.sharding),
            )

    def _resident(self, mode: str, fraction: float) -> bool:
        if mode in ("yes", "no"):
            return mode == "yes"
        if mode != "auto":
            raise DataError(f"data.device_resident={mode!r}; allowed: auto, yes, no")
        return auto_resident(self.split.images.nbytes + self.split.labels.nbytes, fraction)

    def batch_indices(self, step: int) -> np.ndarray:
        """Global row indices (into the split) of batch ``step``."""
        epoch, k = divmod(int(step), self.steps_per_epoch)
        cached_epoch, perm = self._perm
        if cached_epoch != epoch:
            perm = epoch_permutation(self.seed, epoch, self.num_examples)
            self._perm = (epoch, perm)
        return perm[k * self.global_batch : (k + 1) * self.global_batch]

    def host_batch(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """This process's rows of batch ``step`` as numpy arrays."""
        rows = self.batch_indices(step)[self.rows]
        return _gather_rows(self.split.images, self.split.labels, rows)

    def device_indices(self, step: int) -> jax.Array:
        """``batch_indices(step)`` as a replicated int32 device array (device-resident mode)."""
        return jax.make_array_from_process_local_data(
            self._replicated, self.batch_indices(step).astype(np.int32)
        )

    def get(self, step: int) -> tuple[jax.Array, jax.Array]:
        if self.device_resident:
            return self.gather(*self.device_split, self.device_indices(step))
        images, labels = self.host_batch(step)
        return (
            jax.make_array_from_process_local_data(self.sharding, images, self.image_shape),
            jax.make_array_from_process_local_data(self.sharding, labels, (self.global_batch,)),
        )

    def iterate(self, start_step: int = 0) -> Iterator[tuple[int, jax.Array, jax.Array]]:
        """``(step, images, labels)`` for step = start_step, start_step + 1, ... (no end).

        With ``data.prefetch`` > 0 (and host batches) a background thread prepares that many
        batches ahead; ``close()`` stops it and ends the iterator.
        """
        if self.device_resident or self.prefetch <= 0:
            gen = self._synchronous(int(start_step))
        else:
            gen = self._prefetching(int(start_step))
        self._iterators.append(gen)
        return gen

    def _synchronous(self, step: int) -> Iterator[tuple[int, jax.Array, jax.Array]]:
        while True:
            yield (step, *self.get(step))
            step += 1

    def _prefetching(self, start_step: int) -> Iterator[tuple[int, jax.Array, jax.Array]]:
        stop = threading.Event()
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)

        def put(item) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            step = start_step
            try:
                while put((step, *self.get(step))):
                    step += 1
            except BaseException as e:  # handed to the consumer, raised there
                put(e)

        thread = threading.Thread(target=work, name="train-input-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                try:
                    item = q.get(timeout=0.1)
                except queue.Empty:
                    if stop.is_set():
                        return
                    continue
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            if thread.is_alive():
                thread.join()

    def close(self) -> None:
        """Stop every iterator (and prefetch thread) started by ``iterate``."""
        for gen in self._iterators:
            gen.close()
        self._iterators.clear()

    def __enter__(self) -> TrainInput:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def eval_batches(
    split: Split, batch_size: int, mesh: Mesh
) -> Iterator[tuple[jax.Array, jax.Array, jax.Array]]:
    """``(images, labels, mask)`` global arrays covering every example of ``split`` once.

    ``batch_size`` is rounded up to a multiple of the data axis' device count; the last batch is
    padded (with the split's last example) and ``mask`` is float32 1.0 on real rows, 0.0 on
    padding.
    """
    if DATA_AXIS not in mesh.shape:
        raise DataError(
            f"the mesh has axes {tuple(mesh.shape)}; the input needs a {DATA_AXIS!r} axis"
        )
    n_dev = mesh.shape[DATA_AXIS]
    if batch_size < 1:
        raise DataError(f"eval batch size {batch_size} must be >= 1")
    b = math.ceil(batch_size / n_dev) * n_dev
    sharding = NamedSharding(mesh, P(DATA_AXIS))
    shape = (b, *split.images.shape[1:])
    rows = _local_rows(sharding, shape)
    n = split.num_examples
    for start in range(0, n, b):
        idx = np.arange(start, start + b)[rows]
        mask = (idx < n).astype(np.float32)
        idx = np.minimum(idx, n - 1)
        lo, hi = int(idx[0]), int(idx[-1]) + 1  # increasing: read one contiguous slice
        images = np.asarray(split.images[lo:hi])[idx - lo]
        labels = np.asarray(split.labels[lo:hi], np.int32)[idx - lo]
        yield (
            jax.make_array_from_process_local_data(sharding, images, shape),
            jax.make_array_from_process_local_data(sharding, labels, (b,)),
            jax.make_array_from_process_local_data(sharding, mask, (b,)),
        )
