"""perceptual-sweeps trainer: data, models, train loop, checkpoints. See train.py."""
