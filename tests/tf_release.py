"""A fake release of the study's checkpoints: tensorflow/tpu's ResNet v1 built in TensorFlow with
random weights and BatchNorm statistics, saved by a TF1 ``Saver`` at the steps asked for.

    python tests/tf_release.py --out DIR --depth 6 --steps 1000,2000 [--num-classes 1000]

writes ``DIR/model.ckpt-<step>.{index,data-00000-of-00001,meta}`` and ``DIR/checkpoint``, as
TPUEstimator leaves them: the model's variables, their ``Momentum`` slots and ``global_step``.

The network is written here from tensorflow/tpu's models/official/resnet/resnet_model.py at
commit 0325bff (pull request 991, the study's code), independently of the importer's mapping:
``tf.compat.v1.layers`` is gone with Keras 3, so each layer creates its variables with
``tf.compat.v1.variable_scope`` / ``get_variable`` under the unique name ``tf.layers`` would give
(``conv2d``, ``conv2d_1``, ...; ``batch_normalization[_k]``; ``dense``), in the order the TF code
calls its layers (projection shortcut first in a block). The rest follows resnet_model.py:
``conv2d_fixed_padding`` (explicit padding + VALID for strides > 1, SAME otherwise),
``batch_norm_relu`` (fused, epsilon 1e-5, inference mode here), ``block_group`` (ResNet-6:
``layers=[0, 0, 0, 0]`` runs one block without its second conv), the 3x3/2 SAME max-pool, the
global average pool and ``dense``; inputs are normalised as resnet_main.py does (0-255 pixels
minus ``MEAN_RGB``, divided by ``STDDEV_RGB``). ``Release.outputs`` runs it (logits and the
``reduction_1..4`` endpoints) for the equivalence test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from pathlib import Path

import numpy as np

MEAN_RGB = [0.485 * 255, 0.456 * 255, 0.406 * 255]  # resnet_main.py l. 235-236
STDDEV_RGB = [0.229 * 255, 0.224 * 255, 0.225 * 255]
EPSILON = 1e-5
# resnet_model.py l. 855-866 (depth -> block function, blocks per group)
MODEL_PARAMS = {
    6: ("residual", [0, 0, 0, 0]),
    18: ("residual", [2, 2, 2, 2]),
    34: ("residual", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
    200: ("bottleneck", [3, 24, 36, 3]),
}


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")  # plain kernels, and no banner
    import tensorflow as tf  # graphs are built under Graph.as_default(): eager stays on elsewhere

    return tf


class _Network:
    """resnet_model.resnet_v1(depth, num_classes, data_format='channels_last'), inference mode."""

    def __init__(self, tf, depth: int, num_classes: int):
        self.tf = tf
        self.block_fn, self.layers = MODEL_PARAMS[depth]
        self.num_classes = num_classes
        self.counts: dict[str, int] = {}

    def _unique(self, base: str) -> str:  # tf.layers' default layer names
        n = self.counts.get(base, 0)
        self.counts[base] = n + 1
        return base if n == 0 else f"{base}_{n}"

    def conv(self, x, filters: int, kernel_size: int, strides: int):
        tf = self.tf
        with tf.compat.v1.variable_scope(self._unique("conv2d")):
            kernel = tf.compat.v1.get_variable(
                "kernel",
                [kernel_size, kernel_size, int(x.shape[-1]), filters],
                initializer=tf.compat.v1.variance_scaling_initializer(),
            )
        if strides > 1:  # fixed_padding
            beg = (kernel_size - 1) // 2
            end = kernel_size - 1 - beg
            x = tf.pad(x, [[0, 0], [beg, end], [beg, end], [0, 0]])
        padding = "SAME" if strides == 1 else "VALID"
        return tf.nn.conv2d(x, kernel, [1, strides, strides, 1], padding)

    def bn(self, x, relu: bool = True, init_zero: bool = False):
        tf = self.tf
        c = int(x.shape[-1])
        with tf.compat.v1.variable_scope(self._unique("batch_normalization")):
            gamma = tf.compat.v1.get_variable(
                "gamma",
                [c],
                initializer=tf.zeros_initializer() if init_zero else tf.ones_initializer(),
            )
            beta = tf.compat.v1.get_variable("beta", [c], initializer=tf.zeros_initializer())
            mean = tf.compat.v1.get_variable(
                "moving_mean", [c], initializer=tf.zeros_initializer(), trainable=False
            )
            var = tf.compat.v1.get_variable(
                "moving_variance", [c], initializer=tf.ones_initializer(), trainable=False
            )
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, mean, var, epsilon=EPSILON, is_training=False
        )
        return tf.nn.relu(y) if relu else y

    def residual_block(self, x, filters, strides, use_projection, second_conv):
        shortcut = x
        if use_projection:
            shortcut = self.bn(self.conv(x, filters, 1, strides), relu=False)
        x = self.conv(x, filters, 3, strides)
        if second_conv:
            x = self.bn(x)
            x = self.conv(x, filters, 3, 1)
        x = self.bn(x, relu=False, init_zero=True)
        return self.tf.nn.relu(x + shortcut)

    def bottleneck_block(self, x, filters, strides, use_projection, second_conv):
        del second_conv  # the bottleneck block ignores it
        shortcut = x
        if use_projection:
            shortcut = self.bn(self.conv(x, 4 * filters, 1, strides), relu=False)
        x = self.bn(self.conv(x, filters, 1, 1))
        x = self.bn(self.conv(x, filters, 3, strides))
        x = self.bn(self.conv(x, 4 * filters, 1, 1), relu=False, init_zero=True)
        return self.tf.nn.relu(x + shortcut)

    def block_group(self, x, filters, blocks, strides):
        fn = self.residual_block if self.block_fn == "residual" else self.bottleneck_block
        second_conv = blocks != 0
        x = fn(x, filters, strides, True, second_conv)
        for _ in range(1, blocks):
            x = fn(x, filters, 1, False, second_conv)
        return x

    def __call__(self, x):
        tf = self.tf
        x = self.bn(self.conv(x, 64, 7, 2))
        x = tf.nn.max_pool2d(x, 3, 2, "SAME")
        endpoints = {}
        for i, (filters, strides) in enumerate([(64, 1), (128, 2), (256, 2), (512, 2)]):
            x = self.block_group(x, filters, self.layers[i], strides)
            endpoints[f"reduction_{i + 1}"] = x
        x = tf.reduce_mean(x, axis=[1, 2])  # average_pooling2d over the whole map
        with tf.compat.v1.variable_scope(self._unique("dense")):
            kernel = tf.compat.v1.get_variable(
                "kernel",
                [int(x.shape[-1]), self.num_classes],
                initializer=tf.random_normal_initializer(stddev=0.01),
            )
            bias = tf.compat.v1.get_variable(
                "bias", [self.num_classes], initializer=tf.zeros_initializer()
            )
        return tf.matmul(x, kernel) + bias, endpoints


def _random_value(name: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Random weights that keep activations of order one, and BatchNorm statistics unlike the
    initial ones, so a swapped mean/variance or scale/offset shows."""
    leaf = name.rsplit("/", 1)[-1]
    if leaf == "kernel":
        fan_in = int(np.prod(shape[:-1]))
        v = rng.normal(0.0, np.sqrt((2.0 if len(shape) == 4 else 1.0) / fan_in), shape)
    elif leaf == "gamma":
        v = rng.uniform(0.3, 0.8, shape)
    elif leaf == "moving_variance":
        v = rng.uniform(0.5, 2.0, shape)
    else:  # beta, moving_mean, bias
        v = rng.normal(0.0, 0.2, shape)
    return v.astype(np.float32)


class Release:
    """One TF graph of the network, its session, a Momentum optimiser and a TF1 Saver."""

    def __init__(self, depth: int, num_classes: int = 1000, seed: int = 0, prefix: str = ""):
        tf = self.tf = _tf()
        self.depth, self.seed = depth, seed
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.images = tf.compat.v1.placeholder(tf.float32, [None, 64, 64, 3])
            x = self.images - tf.constant(MEAN_RGB, shape=[1, 1, 3])
            x = x / tf.constant(STDDEV_RGB, shape=[1, 1, 3])
            scope = tf.compat.v1.variable_scope(prefix) if prefix else contextlib.nullcontext()
            with scope:
                self.logits, self.endpoints = _Network(tf, depth, num_classes)(x)
            self.global_step = tf.compat.v1.train.get_or_create_global_step()
            # Only for the Momentum slots TPUEstimator's checkpoints carry; never run.
            loss = tf.reduce_mean(tf.square(self.logits))
            tf.compat.v1.train.MomentumOptimizer(0.1, 0.9).minimize(loss, self.global_step)
            self.model_vars = [
                v
                for v in tf.compat.v1.global_variables()
                if not v.op.name.endswith(("/Momentum", "global_step"))
            ]
            self._ph = {
                v.op.name: tf.compat.v1.placeholder(tf.float32, v.shape) for v in self.model_vars
            }
            self._assign = [v.assign(self._ph[v.op.name]) for v in self.model_vars]
            self._step_ph = tf.compat.v1.placeholder(tf.int64, [])
            self._assign_step = self.global_step.assign(self._step_ph)
            self.saver = tf.compat.v1.train.Saver(max_to_keep=None)
            self.sess = tf.compat.v1.Session(graph=self.graph)
            self.sess.run(tf.compat.v1.global_variables_initializer())

    def variable_names(self) -> list[str]:
        return [v.op.name for v in self.model_vars]

    def randomise(self, step: int) -> None:
        """Fresh random weights and statistics for ``step`` (a function of seed and step)."""
        rng = np.random.default_rng([self.seed, self.depth, step])
        feed = {
            self._ph[v.op.name]: _random_value(v.op.name, tuple(v.shape), rng)
            for v in self.model_vars
        }
        self.sess.run(self._assign, feed)
        self.sess.run(self._assign_step, {self._step_ph: step})

    def save(self, out: str | Path, step: int) -> str:
        Path(out).mkdir(parents=True, exist_ok=True)
        with self.graph.as_default():  # a TF1 Saver saves in graph mode only
            return self.saver.save(self.sess, str(Path(out) / "model.ckpt"), global_step=step)

    def outputs(self, images: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits and the ``reduction_1..4`` endpoints of uint8 images at the current weights."""
        feed = {self.images: np.asarray(images, np.float32)}
        return self.sess.run((self.logits, self.endpoints), feed)

    def close(self) -> None:
        self.sess.close()


def write_release(
    out: str | Path,
    depth: int,
    steps: list[int],
    num_classes: int = 1000,
    seed: int = 0,
    prefix: str = "",
    probe: np.ndarray | None = None,
) -> dict[int, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """Save random checkpoints of the depth-``depth`` network at ``steps`` into ``out``;
    with ``probe`` (uint8 images), return each step's ``Release.outputs`` on them."""
    rel = Release(depth, num_classes, seed, prefix)
    outs = {}
    try:
        for step in steps:
            rel.randomise(step)
            rel.save(out, step)
            if probe is not None:
                outs[step] = rel.outputs(probe)
    finally:
        rel.close()
    return outs


def rename_variable(ckpt: str, old: str, new: str) -> None:
    """Rewrite checkpoint ``ckpt`` (a prefix) with variable ``old`` saved as ``new``."""
    tf = _tf()
    reader = tf.train.load_checkpoint(ckpt)
    names = sorted(reader.get_variable_to_shape_map())
    if old not in names:
        raise KeyError(f"{old} is not in {ckpt}")
    with tf.Graph().as_default():
        variables = {
            (new if n == old else n): tf.Variable(reader.get_tensor(n), name="v") for n in names
        }
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            saver.save(sess, ckpt, write_meta_graph=False, write_state=False)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python tests/tf_release.py",
        description="Write a fake release of tensorflow/tpu ResNet checkpoints (random weights).",
    )
    p.add_argument("--out", required=True, help="directory for model.ckpt-<step>.*")
    p.add_argument("--depth", type=int, default=6, choices=sorted(MODEL_PARAMS))
    p.add_argument("--steps", default="1000,2000", help="comma list of steps")
    p.add_argument("--num-classes", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--prefix", default="", help="a variable scope around the model")
    args = p.parse_args(argv)
    try:
        steps = sorted({int(s) for s in args.steps.split(",") if s})
    except ValueError:
        print(f"error: --steps={args.steps!r} is not a comma list of integers", file=sys.stderr)
        return 2
    if not steps or steps[0] < 0:
        print(f"error: --steps={args.steps!r} needs integers >= 0", file=sys.stderr)
        return 2
    write_release(args.out, args.depth, steps, args.num_classes, args.seed, args.prefix)
    print(f"wrote ResNet-{args.depth} checkpoints at steps {steps} to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
