"""A trained checkpoint as a perceptual distance: restore, adapt to 64x64, taps, distances.

``ScoringModel.from_checkpoint(trial_dir, step)`` restores the variables read-only
(``trainer.checkpoint.restore_variables``; EMA parameters when the run kept them, as the
trainer's own eval does), rebuilds the module from the trial's ``config.json`` and adapts it to
the benchmark resolution:

* ResNet / EfficientNet are fully convolutional: applied as they are at any resolution.
* ViT: the position embeddings of the trained patch grid are resized (bilinear, CLS token kept)
  to the grid of the scored images.

Benchmark images go to the device once and stay there (on an accelerator): the evaluator scores
many checkpoints on the same images, so ``_ResidentImages`` keeps each host array's device copy,
as whole padded batches, for as long as the host array lives, and every ``ScoringModel`` with the
same batch size reuses it (64x64 uint8 is 12 KB an image; a small model scores images faster than
a host copy sends them). Benchmark images go through ``trainer.data.normalize`` (the trainer's
eval preprocessing) inside
the same jitted function that runs the model with ``taps=True`` and computes every distance on
every tap, so only per-triplet distances leave the device. The hypothesis probes add one
activation-entropy row per tap to the same pass, and a calibrated checkpoint its ``lin``
distance per tap (``triplet_scores``); without them the function is the plain one. Batches are
sharded over this process's devices (``NamedSharding`` on a 1-D mesh) and padded to a fixed size
(one compile).
"""

from __future__ import annotations

import json
import math
import os
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from evaluator.distances import FEATURE_DISTANCES, TAP_FUNCTIONS, lin_tap
from evaluator.probes import ENTROPY, normalised_entropy
from trainer import files

SCORED_SIZE = 64


class CheckpointError(RuntimeError):
    """A checkpoint or trial directory that cannot be turned into a scoring model."""


def read_trial_config(trial_dir: str | os.PathLike) -> dict[str, Any]:
    path = files.path(trial_dir) / "config.json"
    try:
        cfg = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{path} is missing; a trial directory holds config.json") from None
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path} is not valid JSON: {e}") from None
    for section in ("model", "data"):
        if not isinstance(cfg.get(section), dict):
            raise CheckpointError(f"{path} has no '{section}' section")
    return cfg


def _vit_posemb(params: Any, grid: int) -> tuple[Any, str]:
    """Resize the ViT position embedding table to ``grid`` x ``grid`` tokens (+ CLS)."""
    pos = np.asarray(params["pos_embedding"])
    n_old = pos.shape[1] - 1
    old = math.isqrt(n_old)
    if old * old != n_old:
        raise CheckpointError(f"ViT pos_embedding has {n_old} patch tokens, not a square grid")
    if old == grid:
        return params, "native resolution, applied as is"
    table = pos[0, 1:].reshape(old, old, -1)
    # jax.image.resize does the antialiased bilinear resampling big_vision uses for this.
    new = jax.image.resize(jnp.asarray(table), (grid, grid, table.shape[-1]), method="bilinear")
    new_pos = np.concatenate([pos[:, :1], np.asarray(new).reshape(1, grid * grid, -1)], axis=1)
    params = dict(params)
    params["pos_embedding"] = new_pos.astype(pos.dtype)
    how = f"ViT position embeddings interpolated (bilinear) from {old}x{old} to {grid}x{grid}"
    return params, how


def taps_fn(model: Any, tap_names: tuple[str, ...]):
    """``taps(variables, images_uint8) -> {tap: array}``: the trainer's normalisation, then the
    model with ``taps=True`` (traced inside each jitted function below)."""
    from trainer.data import normalize

    def taps_of(variables, images_uint8):
        _, taps = model.apply(variables, normalize(images_uint8), train=False, taps=True)
        return {name: taps[name] for name in tap_names}

    return taps_of


def compiled_distances(
    model: Any, tap_names: tuple[str, ...], probes: bool = False, lin: bool = False
):
    """Jitted (triplet, pair) distance functions of one architecture, shared by every checkpoint
    of it (the variables are arguments), so a sweep compiles once per model config.

    Each returns one (rows, batch) float32 array, rows in ``packed_rows`` order: one transfer back to
    the host per batch instead of one per distance and tap (24 for a 4-tap ResNet triplet),
    whose fixed costs otherwise add up to a good part of a fast model's time on a GPU.
    ``probes`` adds the triplet's activation entropy per tap (the mean over its three images);
    ``lin`` adds the calibrated distance per tap, its weights ``{tap: (C,)}`` then the second
    argument (``f(variables, weights, *images)``). Without either, the functions are those of
    plain scoring, unchanged."""
    key = (repr(model), tap_names, probes, lin)
    if key not in _COMPILED:
        taps_of = taps_fn(model, tap_names)

        def rows_of(taps, b, others, weights):
            out = []
            for kind, t, lo in packed_rows(tap_names, others, probes=probes, lin=lin):
                if kind == ENTROPY:  # (3b,) -> the mean of each triplet's three images
                    out.append(jnp.mean(normalised_entropy(taps[t]).reshape(3, b), axis=0))
                elif kind == "lin":
                    out.append(lin_tap(taps[t][:b], taps[t][lo : lo + b], weights[t]))
                else:
                    out.append(TAP_FUNCTIONS[kind](taps[t][:b], taps[t][lo : lo + b]))
            return jnp.stack(out)

        def triplet(variables, *args):
            weights, (ref, p0, p1) = (args[0] if lin else None), args[-3:]
            b = ref.shape[0]
            taps = taps_of(variables, jnp.concatenate([ref, p0, p1], axis=0))
            return rows_of(taps, b, (b, 2 * b), weights)

        def pair(variables, *args):
            weights, (p0, p1) = (args[0] if lin else None), args[-2:]
            b = p0.shape[0]
            taps = taps_of(variables, jnp.concatenate([p0, p1], axis=0))
            return rows_of(taps, b, (b,), weights)

        _COMPILED[key] = (jax.jit(triplet), jax.jit(pair))
    return _COMPILED[key]


def packed_rows(
    tap_names: Sequence[str], others: Sequence[int] = (0,), probes: bool = False, lin: bool = False
) -> list[tuple[str, str, int]]:
    """The packed output's rows: (distance, tap, offset of the compared images) for each, then
    with ``lin`` the calibrated distance's, then with ``probes`` one entropy row per tap of a
    triplet (offset 0)."""
    rows = [(k, t, lo) for k in FEATURE_DISTANCES for t in tap_names for lo in others]
    if lin:
        rows += [("lin", t, lo) for t in tap_names for lo in others]
    if probes and len(others) == 2:
        rows += [(ENTROPY, t, 0) for t in tap_names]
    return rows


_COMPILED: dict[Any, Any] = {}


def _padded_batches(a: np.ndarray, batch: int):
    """``a`` in consecutive ``batch``-row chunks, the last padded with zero images up to the one
    compiled batch size (views of ``a`` where no padding is needed)."""
    for start in range(0, len(a), batch):
        c = a[start : start + batch]
        if len(c) < batch:
            c = np.concatenate([c, np.zeros((batch - len(c), *c.shape[1:]), c.dtype)])
        yield c


class _ResidentImages:
    """Device copies of host image arrays, as a list of whole (padded) batches, each sharded
    over the batch axis, kept while the host array lives (keyed by identity; a weak reference
    drops the copy with the array). Separate per-batch arrays, not one stacked array indexed
    per call, which costs an eager slice per batch (docs/performance.md, Findings). Written
    here rather than taken from a library: what
    is cached is "this numpy array on these devices in these batches", which no JAX cache
    offers."""

    def __init__(self):
        self._entries: dict[tuple[int, int, tuple[int, ...]], tuple[Any, list[jax.Array]]] = {}

    def get(self, images: np.ndarray, batch: int, sharding: NamedSharding) -> list[jax.Array]:
        key = (id(images), batch, tuple(d.id for d in sharding.mesh.devices.flat))
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is images:
            return entry[1]
        host = np.asarray(images)
        # Copies, not views: a CPU device array may alias the numpy memory it was given, and
        # a view would then keep ``images`` alive for as long as the cache keeps its copy.
        chunks = [c.copy() for c in _padded_batches(host, batch)]
        dev = jax.device_put(chunks, sharding)
        try:
            ref = weakref.ref(images, lambda _, k=key: self._entries.pop(k, None))
        except TypeError:  # not weakly referenceable (a list, say): not kept
            return dev
        self._entries[key] = (ref, dev)
        return dev

    def __len__(self) -> int:
        return len(self._entries)


_RESIDENT = _ResidentImages()


@dataclass
class ScoringModel:
    """A restored model ready to turn image batches into per-tap distances."""

    model: Any
    variables: dict[str, Any]
    tap_names: list[str]
    model_cfg: dict[str, Any]
    resolution: dict[str, Any]
    params_used: str  # "params" | "ema_params"
    batch_size: int = 256
    resident: bool | None = None  # images stay on the device between calls; None: not on a CPU
    integrity: str | None = None  # from_checkpoint: trainer.integrity.VERIFIED or NO_RECORD
    native_variables: dict[str, Any] | None = None  # as trained, where scoring resized them

    @classmethod
    def from_checkpoint(
        cls,
        trial_dir: str | os.PathLike,
        step: int,
        ckpt_dir: str | os.PathLike | None = None,
        batch_size: int = 256,
        resident: bool | None = None,
    ) -> ScoringModel:
        from trainer import checkpoint, integrity

        cfg = read_trial_config(trial_dir)
        ckpt_dir = files.path(ckpt_dir) if ckpt_dir else checkpoint.checkpoint_dir(trial_dir)
        try:  # checks the step's integrity record first (integrity.Damaged, one line)
            restored = checkpoint.restore_variables(ckpt_dir, step)
        except FileNotFoundError as e:  # a step that is not there: one line, not a traceback
            raise CheckpointError(str(e)) from None
        sm = cls.from_variables(cfg, restored, batch_size=batch_size, resident=resident)
        has_record = integrity.read_record(files.path(ckpt_dir) / str(step)) is not None
        sm.integrity = integrity.VERIFIED if has_record else integrity.NO_RECORD
        return sm

    @classmethod
    def from_variables(
        cls,
        cfg: Mapping[str, Any],
        restored: Mapping[str, Any],
        batch_size: int = 256,
        resident: bool | None = None,
        scored_size: int = SCORED_SIZE,
    ) -> ScoringModel:
        """``scored_size``: the image size a ViT's position embeddings are resized for (BAPPS's
        64; evaluator.imagesets.model_for asks for others)."""
        from trainer.models import build_model, tap_names

        model_cfg = dict(cfg["model"])
        trained = int(cfg["data"]["image_size"])
        model = build_model(model_cfg, int(cfg["data"]["num_classes"]))
        used = "ema_params" if restored.get("ema_params") is not None else "params"
        params = restored[used]
        if model_cfg["name"] == "vit":
            patch = int(np.asarray(params["embedding"]["kernel"]).shape[0])
            params, how = _vit_posemb(params, scored_size // patch)
        elif trained == scored_size:
            how = "native resolution, applied as is"
        else:
            how = "fully convolutional, applied as is"
        variables = {"params": params}
        if restored.get("batch_stats"):
            variables["batch_stats"] = restored["batch_stats"]
        native = None
        if params is not restored[used]:  # the frequency probe runs at the trained resolution
            native = {**variables, "params": restored[used]}
        names = tap_names(model_cfg, scored_size)
        return cls(
            model=model,
            variables=variables,
            tap_names=names,
            model_cfg=model_cfg,
            resolution={"trained": trained, "scored": scored_size, "how": how},
            params_used=used,
            batch_size=batch_size,
            resident=resident,
            native_variables=native,
        )

    def __post_init__(self):
        from trainer.pipeline import DATA_AXIS, make_mesh

        self._mesh = make_mesh(jax.local_devices())
        self._data = NamedSharding(self._mesh, P(DATA_AXIS))
        n = self._mesh.size
        self._batch = max(n, -(-int(self.batch_size) // n) * n)
        self._vars = jax.device_put(self.variables, NamedSharding(self._mesh, P()))
        self._triplet, self._pair = compiled_distances(self.model, tuple(self.tap_names))
        if self.resident is None:
            self.resident = jax.default_backend() != "cpu"

    # ------------------------------------------------------------------ batching

    def _batches(self, arrays: Sequence[np.ndarray], resident: bool | None = None):
        n = len(arrays[0])
        if self.resident if resident is None else resident:
            per_batch = [_RESIDENT.get(a, self._batch, self._data) for a in arrays]
            for i, start in enumerate(range(0, n, self._batch)):
                yield min(self._batch, n - start), [b[i] for b in per_batch]
            return
        batches = zip(*(_padded_batches(a, self._batch) for a in arrays), strict=True)
        for start, chunk in zip(range(0, n, self._batch), batches, strict=True):
            m = min(self._batch, n - start)
            yield m, [jax.device_put(np.ascontiguousarray(c), self._data) for c in chunk]

    @staticmethod
    def _collect(parts: list[tuple[int, Any]], rows: int) -> np.ndarray:
        """The batches' packed (rows, batch) outputs, padding dropped, as one host array."""
        if not parts:
            return np.zeros((rows, 0), np.float32)
        host = jax.device_get([x for _, x in parts])
        return np.concatenate(
            [np.asarray(x)[:, :m] for (m, _), x in zip(parts, host, strict=True)], axis=1
        )

    def run_packed(
        self, fn: Any, arrays: Sequence[np.ndarray], rows: int, *extra: Any, resident=None
    ):
        """``fn(variables, *extra, *batch)`` over ``arrays`` in padded device batches; its packed
        (rows, batch) outputs as one host array (rows, N). ``resident`` overrides whether the
        images stay on the device (``self.resident``)."""
        parts = [(m, fn(self._vars, *extra, *b)) for m, b in self._batches(arrays, resident)]
        return self._collect(parts, rows)

    def _weights(self, lin: Mapping[str, np.ndarray]) -> dict[str, jax.Array]:
        w = {t: np.asarray(lin[t], np.float32) for t in self.tap_names}
        return jax.device_put(w, NamedSharding(self._mesh, P()))

    def triplet_scores(
        self, ref, p0, p1, probes: bool = False, lin: Mapping[str, np.ndarray] | None = None
    ) -> tuple[dict[str, dict[str, tuple[np.ndarray, ...]]], dict[str, np.ndarray] | None]:
        """``({distance: {tap: (d(ref, p0), d(ref, p1))}}, {tap: entropy} or None)``, each (N,)
        float32; ``lin`` (``{tap: weights}``) adds the ``lin`` distance, ``probes`` the
        activation entropy of each triplet (the mean over its three images), in the same
        pass."""
        names = tuple(self.tap_names)
        triplet, _ = compiled_distances(self.model, names, probes, lin is not None)
        layout = packed_rows(names, (1, 2), probes=probes, lin=lin is not None)
        extra = (self._weights(lin),) if lin is not None else ()
        rows = self.run_packed(triplet, [ref, p0, p1], len(layout), *extra)
        dists: dict[str, dict[str, list[np.ndarray]]] = {}
        entropy: dict[str, np.ndarray] = {}
        for (kind, tap, _), row in zip(layout, rows, strict=True):
            if kind == ENTROPY:
                entropy[tap] = row
            else:
                dists.setdefault(kind, {}).setdefault(tap, []).append(row)
        out = {k: {t: tuple(v) for t, v in d.items()} for k, d in dists.items()}
        return out, (entropy if probes else None)

    def triplet_distances(self, ref, p0, p1) -> dict[str, dict[str, tuple[np.ndarray, ...]]]:
        """``{distance: {tap: (d(ref, p0), d(ref, p1))}}``, each (N,) float32."""
        return self.triplet_scores(ref, p0, p1)[0]

    def pair_distances(
        self, p0, p1, lin: Mapping[str, np.ndarray] | None = None
    ) -> dict[str, dict[str, np.ndarray]]:
        """``{distance: {tap: d(p0, p1)}}``, each (N,) float32 (``lin`` as in triplet_scores)."""
        names = tuple(self.tap_names)
        _, pair = compiled_distances(self.model, names, False, lin is not None)
        layout = packed_rows(names, lin=lin is not None)
        extra = (self._weights(lin),) if lin is not None else ()
        rows = self.run_packed(pair, [p0, p1], len(layout), *extra)
        out: dict[str, dict[str, np.ndarray]] = {}
        for (kind, tap, _), row in zip(layout, rows, strict=True):
            out.setdefault(kind, {})[tap] = row
        return out

    def trained_variables_on_device(self) -> Any:
        """The variables as trained (a ViT's own position embeddings), replicated on this
        process's devices: for running the model at its training resolution."""
        if self.native_variables is None:
            return self._vars
        return jax.device_put(self.native_variables, NamedSharding(self._mesh, P()))

    @property
    def mesh(self) -> Any:
        return self._mesh
