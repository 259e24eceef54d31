"""The evaluation parts of the bench: ``forward`` (a bare jitted forward pass at the evaluator's
batch and resolution: the evaluator's ceiling) and ``evaluator`` (``ScoringModel.
triplet_distances``, and ``triplet_scores`` with the probes' rows, timed in rounds alternating
with the forward pass; then one frequency probe). The model and its initial variables come from
``trainer.steps.build_run``, at the scored resolution.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import ml_collections

from bench.cli import spec_config
from bench.data import synthetic_images
from bench.measure import time_interleaved, time_rounds
from evaluator.features import SCORED_SIZE, ScoringModel


def scored_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``config`` at the evaluator's resolution (a ViT's position embeddings follow it)."""
    cfg = ml_collections.ConfigDict(config.to_dict())
    cfg.data.image_size = SCORED_SIZE
    return cfg


def eval_batch(config: ml_collections.ConfigDict) -> int:
    """Images per forward pass of the evaluator: triplets of ``perceptual.batch_size`` (ref,
    p0, p1 in one pass)."""
    return 3 * int(config.perceptual.batch_size)


def initial_variables(config: ml_collections.ConfigDict) -> tuple[Any, dict[str, Any]]:
    """``(model, {"params", "batch_stats" where the model has them})`` of ``config``'s run
    (``trainer.steps.build_run``, the train loop's), as a checkpoint would hold them; the
    optimiser state is never made (it is dropped inside the jitted init)."""
    import jax

    from trainer import pipeline, steps

    run = steps.build_run(config, pipeline.make_mesh(), 1, 1)

    def variables(key):
        state = run.init(key)
        out = {"params": state["params"]}
        if state["batch_stats"]:
            out["batch_stats"] = state["batch_stats"]
        return out

    return run.model, jax.jit(variables)(jax.random.PRNGKey(config.seed))


def forward_runner(config, model, variables, batch: int) -> Callable[[int], None]:
    """``run(n)``: n jitted ``model.apply(train=False)`` calls on one normalised device batch
    (logits only: the run's eval step also sums a loss and top-k, which the evaluator does
    not)."""
    import jax
    import numpy as np

    from trainer.data import normalize

    size = int(config.data.image_size)
    rng = np.random.default_rng(1)
    labels = rng.integers(0, config.data.num_classes, batch)
    x = jax.device_put(normalize(synthetic_images(rng, labels, size)))
    apply = jax.jit(lambda v, x: model.apply(v, x, train=False))

    def run_steps(n: int) -> None:
        out = None
        for _ in range(n):
            out = apply(variables, x)
        jax.block_until_ready(out)

    return run_steps


def forward(spec: dict[str, Any]) -> dict[str, Any]:
    """images/s of a bare jitted forward pass (``model.apply(..., train=False)``) on a batch of
    normalised images already on the device, at the evaluator's batch and resolution: the
    ceiling for the evaluator (in a process of its own, for its own peak memory)."""
    config = scored_config(spec_config(spec))
    args = spec["args"]
    batch = eval_batch(config)
    model, variables = initial_variables(config)
    run_steps = forward_runner(config, model, variables, batch)
    t = time_rounds(run_steps, int(args["steps"]), int(args["rounds"]))
    return {
        "images_per_sec": round(batch * t["steps"] / t["seconds"], 1),
        **t,
        "batch": batch,
        "size": SCORED_SIZE,
        "what": "jitted model.apply(train=False) on a normalised batch already on the device",
    }


def frequency_cost(config: ml_collections.ConfigDict, scorer: Any, size: int) -> dict[str, Any]:
    """Seconds of one frequency probe (``evaluator.frequency``: ``perceptual.frequency_examples``
    synthetic images at the trained resolution ``size``, clean and every filtered version):
    what it adds to each scored checkpoint, whatever the benchmark's size. The second call is
    timed (the first compiles)."""
    import numpy as np

    from bench.data import synthetic_images
    from evaluator.frequency import frequency_probe, radii

    n = int(config.perceptual.frequency_examples)
    if n == 0:
        return {"examples": 0, "seconds": 0.0}
    rng = np.random.default_rng(2)
    labels = rng.integers(0, config.data.num_classes, n).astype(np.int32)
    images = synthetic_images(rng, labels, size)
    t0 = time.perf_counter()
    frequency_probe(scorer, images, labels, {})
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    frequency_probe(scorer, images, labels, {})
    return {
        "examples": n,
        "image_size": size,
        "forward_images": n * (1 + 2 * len(radii(size))),
        "seconds": round(time.perf_counter() - t0, 3),
        "first_call_seconds": round(first, 3),
    }


def evaluator(spec: dict[str, Any]) -> dict[str, Any]:
    """images/s of the evaluator's ``ScoringModel.triplet_distances`` (uint8 images to the
    device, kept there on an accelerator as in the evaluator job; normalise, taps, every
    distance on every tap, distances back to the host): the path every benchmark triplet
    takes. Weights are freshly initialised (speed does not depend on them); images are
    synthetic uint8 at the scored resolution."""
    import jax
    import numpy as np

    trained_size = int(spec_config(spec).data.image_size)
    config = scored_config(spec_config(spec))
    args = spec["args"]
    batch, size = eval_batch(config), SCORED_SIZE
    per_call = batch // 3
    model, variables = initial_variables(config)
    restored = jax.tree.map(np.asarray, variables)
    cfg = {"model": config.model.to_dict(), "data": config.data.to_dict()}
    scorer = ScoringModel.from_variables(cfg, restored, batch_size=per_call)
    n = per_call * int(args["steps"])
    rng = np.random.default_rng(0)
    labels = rng.integers(0, config.data.num_classes, n)
    ref = synthetic_images(rng, labels, size)
    p0 = synthetic_images(rng, labels, size)
    p1 = synthetic_images(rng, labels, size)

    # The same array objects on every call, as the evaluator job passes a benchmark's arrays
    # for every checkpoint: on an accelerator they go to the device on first use and stay
    # (ScoringModel.resident), so the warm-up below uploads them and the timed rounds do not.
    views: dict[int, tuple[Any, ...]] = {}

    def run_steps(k: int) -> None:
        m = min(n, k * per_call)
        if m not in views:
            views[m] = (ref[:m], p0[:m], p1[:m])
        out = scorer.triplet_distances(*views[m])
        jax.block_until_ready(out)

    def run_probes(k: int) -> None:  # the same pass with the probes' entropy rows
        m = min(n, k * per_call)
        if m not in views:
            views[m] = (ref[:m], p0[:m], p1[:m])
        jax.block_until_ready(scorer.triplet_scores(*views[m], probes=True))

    # The bare forward pass runs here too, its rounds alternating with the evaluator's, so the
    # ratio is taken under the same conditions (a shared CPU's load drifts between processes).
    fwd = forward_runner(config, model, variables, batch)
    steps, rounds = int(args["steps"]), int(args["rounds"])
    t0 = time.perf_counter()
    run_steps(steps)  # compile, and the upload when resident
    upload_s = time.perf_counter() - t0
    runners = {"evaluator": run_steps, "probes": run_probes, "forward": fwd}
    both = time_interleaved(runners, steps, rounds, warmup=1)
    t, f, pr = both["evaluator"], both["forward"], both["probes"]
    return {
        "images_per_sec": round(3 * n / t["seconds"], 1),
        "forward_images_per_sec": round(batch * steps / f["seconds"], 1),
        "forward_cpu_seconds": f["cpu_seconds"],
        "round_images": 3 * n,
        "forward_round_images": batch * steps,
        "forward_round_seconds": f["round_seconds"],
        **t,
        "batch": batch,
        "size": size,
        "taps": list(scorer.tap_names),
        "resident": bool(scorer.resident),
        "first_call_seconds": round(upload_s, 3),
        "probes_images_per_sec": round(3 * n / pr["seconds"], 1),
        "probes_ratio_to_plain": round(t["seconds"] / pr["seconds"], 4),
        "probes_cpu_ratio_to_plain": round(t["cpu_seconds"] / pr["cpu_seconds"], 4),
        # at the trained resolution (a ViT's bench variables exist at the scored one only)
        "frequency_probe": frequency_cost(
            config, scorer, size if config.model.name == "vit" else trained_size
        ),
        "note": f"{len(scorer.tap_names)} taps x 3 distances, {size}x{size}"
        + (", images resident on the device" if scorer.resident else ", host images"),
        "what": "evaluator.features.ScoringModel.triplet_distances on uint8 triplets (kept on "
        "the device after the first call on an accelerator, as in the evaluator job)",
    }
