"""A trial directory with real tiny checkpoints, for the evaluator's tests."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

from trainer.checkpoint import Checkpointer
from trainer.files import atomic_write_json


def _config(proxy_dir: Path, depth: int = 2):
    from sweeps import smoke

    cfg = smoke.get_config()
    cfg.model.depth = depth
    cfg.perceptual.proxy_dir = str(proxy_dir)
    cfg.perceptual.batch_size = 16
    cfg.checkpoint.max_to_keep = 10
    cfg.checkpoint.keep_every_steps = 0
    cfg.checkpoint.async_save = False
    return cfg


class Trial:
    """A trial directory with a real tiny ResNet, checkpoints saved by trainer.checkpoint."""

    def __init__(self, runs: Path, name: str, proxy_dir: Path, total_steps: int = 100):
        from trainer.models import build_model

        self.dir = runs / name
        self.cfg = _config(proxy_dir)
        atomic_write_json(self.dir / "config.json", self.cfg.to_dict())
        model = build_model(self.cfg.model, self.cfg.data.num_classes)
        x = np.zeros((1, 16, 16, 3), np.float32)
        init = jax.jit(lambda k, x: model.init({"params": k}, x, train=False))  # faster than eager
        self.variables = init(jax.random.key(0), x)
        self.total_steps = total_steps
        self.status("running")

    def status(self, state: str) -> None:
        atomic_write_json(self.dir / "status.json", {"state": state})

    def save(self, *steps: int) -> None:
        ck = Checkpointer(self.dir, self.cfg.checkpoint, self.total_steps)
        for s in steps:
            key = jax.random.key(s)
            params = jax.tree.map(
                lambda a, k=key: a + 0.05 * jax.random.normal(k, a.shape), self.variables["params"]
            )
            state = {
                "step": s,
                "params": params,
                "batch_stats": self.variables["batch_stats"],
                "opt_state": {},
                "rng": jax.random.key_data(key),
            }
            ck.save(s, state)
        ck.wait()
        ck.close()
