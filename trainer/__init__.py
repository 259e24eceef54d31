"""perceptual-sweeps trainer: data, models, train loop, checkpoints. See train.py."""


def __getattr__(name):
    # ``trainer.train_and_evaluate`` without making ``import trainer`` load JAX.
    if name == "train_and_evaluate":
        from trainer.train import train_and_evaluate

        return train_and_evaluate
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")
