"""perceptual-sweeps trainer: data, models, train loop, checkpoints.

``trainer.train.train_and_evaluate(config, workdir)`` is the loop; ``trainer.steps.build_run``
what a run needs (model, optimiser, jitted steps), shared with the speed benchmarks (bench/).
"""
