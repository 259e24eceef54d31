"""Speed benchmarks (``python -m bench``, ``make bench``): how fast the trainer and the evaluator
run against the ceilings the model sets, and how much host memory each takes.

Four sections, one table, one JSON file (``bench-results/<UTC time>.json`` or ``--out``):

1. ``bare_step``: images/s of the trainer's own jitted train step on a batch already on the
   device: the ceiling for training.
2. ``end_to_end``: images/s of the trainer's real loop (prepared memory-mapped split,
   permutation batching, on-device augmentation, metrics, eval, checkpoints at the configured
   rate) in steady state, from its own ``metrics.jsonl`` (compile and warm-up excluded), and the
   ratio to (1); then, in the loop's process, (1) again in rounds alternating with the ``plain``
   reference (``plain.py``: a minimal Flax loop, data resident on the device), so the table
   gives trainer/bare, trainer/plain and bare/plain.
3. ``evaluator``: images/s of the evaluator's tap extraction + distances against a bare jitted
   forward pass of the same model, and the ratio.
4. ``memory``: peak host memory (``VmHWM``, and the anonymous part) of each part, and of the
   end-to-end loop on a split N and 2N images large (flat when the split is memory-mapped).

Every part runs in its own Python process (``python -m bench.parts``), so each peak is that
part's alone and one part's compile caches or buffers do not help or hurt another. Data: the
prepared Fashion-MNIST at ``--size`` on a CPU, a synthetic ImageNet-64-shaped prepared split on
an accelerator (``--data auto``), so nothing is downloaded. Model, optimiser, state and steps
come from ``trainer.steps.build_run``, the function the train loop starts from.

Modules: ``cli`` (arguments, config, running the parts), ``parts`` (one part in this process),
``training`` (the train step and the trainer's loop), ``scoring`` (forward pass and evaluator),
``data`` (synthetic split, the ``prepare`` part), ``measure`` (clocks and memory), ``results``
(the JSON and the table), ``plain`` (the plain Flax loop), ``probe`` (a GPU diagnostic of the
evaluator, not part of ``make bench``), ``packing`` (aggregate images/s of K trials sharing one
device), ``first_step`` (time to the first step of a sweep's 1st and 2nd trial), ``study``
(images/s per study model, measured or scaled by FLOPs); ``gpu_check.sh`` runs them on a GPU
machine.
"""
