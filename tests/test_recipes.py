"""The paper presets against the study's code: every recipe value is compared with a table that
cites where it comes from (tensorflow/tpu at commit 0325bff, the study's pull request 991, for
ResNet and EfficientNet; the ViT paper, arXiv 2010.11929, for ViT), and the schedules and the
weight-decay set against the code's own formulas (resnet_main.py, efficientnet/utils.py)."""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweeps import base, recipes
from trainer import optim
from trainer.models import build_model

RES = "models/official/resnet/"
EFF = "models/official/efficientnet/"

# (key, value, source) per preset. Sources: file:line at tensorflow/tpu 0325bff, or the ViT paper.
TABLE = {
    "paper": [
        ("model.name", "resnet", RES + "resnet_main.py:405 resnet_model.resnet"),
        ("model.depth", 50, RES + "configs/resnet_config.py:19 resnet_depth"),
        ("model.dtype", "bfloat16", RES + "configs/resnet_config.py:31 precision"),
        ("model.dropout", 0.0, RES + "configs/resnet_config.py:56 dropout_rate: None"),
        ("model.bn_momentum", 0.9, RES + "configs/resnet_config.py:58; resnet_model.py:37"),
        ("train.batch_size", 1024, RES + "configs/resnet_config.py:20 train_batch_size"),
        ("train.epochs", 90.0, RES + "configs/resnet_config.py:24 train_steps 112590 = 90 x 1251"),
        ("train.base_lr", 0.1, RES + "configs/resnet_config.py:25; resnet_main.py:268-269"),
        ("train.optimizer", "sgd", RES + "resnet_main.py:500 MomentumOptimizer"),
        ("train.momentum", 0.9, RES + "configs/resnet_config.py:36"),
        ("train.nesterov", True, RES + "resnet_main.py:503 use_nesterov=True"),
        ("train.schedule", "step", RES + "resnet_main.py:239-248 get_lr_schedule"),
        ("train.warmup_epochs", 5.0, RES + "resnet_main.py:244, 275-276"),
        ("train.step_boundaries", (30 / 90, 60 / 90, 80 / 90), RES + "resnet_main.py:245-247"),
        ("train.step_factor", 0.1, RES + "resnet_main.py:245-247 (0.1, 0.01, 0.001)"),
        ("train.weight_decay", 1e-4, RES + "configs/resnet_config.py:37"),
        ("train.weight_decay_mode", "l2", RES + "resnet_main.py:474 + weight_decay * l2_loss"),
        ("train.weight_decay_on", "non_norm", RES + "resnet_main.py:476-477 batch_normalization"),
        ("train.label_smoothing", 0.0, RES + "configs/resnet_config.py:38"),
        ("train.ema_decay", 0.0, RES + "configs/resnet_config.py:57 moving_average_decay: 0"),
        ("train.grad_clip", 0.0, RES + "resnet_main.py:514 optimizer.minimize (no clipping)"),
        ("data.crop", "distorted_bbox", RES + "resnet_preprocessing.py:86-106"),
        ("data.flip", True, RES + "resnet_preprocessing.py:132-135, 161"),
        ("data.eval_crop", "center", RES + "resnet_preprocessing.py:109-129, 203"),
        ("data.num_classes", 1000, RES + "configs/resnet_config.py:32"),
    ],
    "paper_efficientnet": [
        ("model.name", "efficientnet", EFF + "main.py:88-91 model_name efficientnet-b0"),
        ("model.variant", "b0", EFF + "main.py:88-91"),
        ("model.dropout", 0.2, EFF + "efficientnet_builder.py:39 (b0)"),
        ("model.stochastic_depth", 0.2, EFF + "efficientnet_builder.py:183 survival_prob=0.8"),
        ("model.bn_momentum", 0.99, EFF + "efficientnet_builder.py:187"),
        ("model.dtype", "bfloat16", EFF + "main.py:220-223 use_bfloat16"),
        ("train.batch_size", 2048, EFF + "main.py:127-128"),
        ("train.epochs", 350.0, EFF + "main.py:117-121 train_steps 218949"),
        ("train.optimizer", "rmsprop", EFF + "main.py:283-286"),
        ("train.rmsprop_decay", 0.9, EFF + "utils.py:85"),
        ("train.rmsprop_eps", 1e-3, EFF + "utils.py:86"),
        ("train.momentum", 0.9, EFF + "utils.py:87"),
        ("train.base_lr", 0.016, EFF + "main.py:234-237, 437"),
        ("train.schedule", "exponential", EFF + "main.py:288-289; utils.py:45-49"),
        ("train.exp_decay_epochs", 2.4, EFF + "main.py:239"),
        ("train.exp_decay_factor", 0.97, EFF + "main.py:291-292"),
        ("train.warmup_epochs", 5.0, EFF + "main.py:294-295; utils.py:72-78"),
        ("train.weight_decay", 1e-5, EFF + "main.py:245-247"),
        ("train.weight_decay_mode", "l2", EFF + "main.py:420"),
        ("train.weight_decay_on", "non_norm", EFF + "main.py:421-422 batch_normalization"),
        ("train.label_smoothing", 0.1, EFF + "main.py:249-251"),
        ("train.ema_decay", 0.9999, EFF + "main.py:241-243"),
        ("train.ema_warmup", True, EFF + "main.py:426-427 num_updates=global_step"),
        ("data.crop", "distorted_bbox", EFF + "preprocessing.py:96-115"),
        ("data.eval_crop", "center", EFF + "preprocessing.py:118-137"),
    ],
    "paper_vit": [
        ("model.name", "vit", "the study: ViT-B/8"),
        ("model.variant", "B/8", "the study: ViT-B/8"),
        ("model.encoder_dropout", 0.1, "ViT paper Table 3 (dropout 0.1); vit_jax/models_vit.py"),
        ("model.dropout", 0.0, "vit_jax/models_vit.py: no dropout before the head"),
        ("train.optimizer", "adamw", "ViT paper section 4.1: Adam"),
        ("train.adam_b1", 0.9, "ViT paper section 4.1"),
        ("train.adam_b2", 0.999, "ViT paper section 4.1"),
        ("train.base_lr", 3e-3 * 256 / 4096, "ViT paper Table 3: 3e-3 at batch 4096"),
        ("train.warmup_epochs", 10000 * 4096 / 1281167, "ViT paper Table 3: 10k steps"),
        ("train.schedule", "cosine", "ViT paper Table 3"),
        ("train.epochs", 300.0, "ViT paper Table 3"),
        ("train.weight_decay", 0.3, "ViT paper Table 3; confirmed by the study"),
        ("train.weight_decay_mode", "decoupled", "flax.optim.Adam weight_decay (lr x wd x w)"),
        ("train.grad_clip", 1.0, "ViT paper Table 3 caption: clip at global norm 1"),
        ("train.label_smoothing", 0.0, "ViT paper Table 3 (none)"),
    ],
}


@pytest.mark.parametrize(
    "preset, key, value, source",
    [(p, k, v, s) for p, rows in TABLE.items() for k, v, s in rows],
    ids=lambda x: x if isinstance(x, str) and "/" not in x and " " not in x else "",
)
def test_paper_preset_value_matches_its_source(preset, key, value, source):
    got = base.normalised(base.get_config(preset))[key]
    want = base.normalised({"x": value})["x"]
    if isinstance(want, float):
        assert got == pytest.approx(want, rel=1e-12), source
    else:
        assert got == want, source


def test_every_paper_preset_resolves_on_imagenet64():
    for preset in ("paper", "paper_vit", "paper_efficientnet"):
        c = base.get_config(preset)
        assert (c.data.name, c.data.image_size, c.data.num_classes) == ("imagenet64", 64, 1000)


def _tf_resnet_lr(step, batch=1024, images=1281167, epochs=90):
    """resnet_main.py:239-280 (learning_rate_schedule with get_lr_schedule), in numpy."""
    spe = images / batch
    train_epochs = math.floor(images / batch) * epochs / math.floor(images / batch)
    scaled = 0.1 * batch / 256.0
    sched = [(m, np.floor(e / 90 * train_epochs)) for m, e in ((1.0, 5), (0.1, 30), (0.01, 60))]
    sched.append((0.001, np.floor(80 / 90 * train_epochs)))
    epoch = step / spe
    lr = scaled * epoch / sched[0][1]
    for mult, start in sched:
        lr = lr if epoch < start else scaled * mult
    return lr


def _same_epochs(ours, theirs, spe_ours, spe_theirs, epochs, boundaries):
    """Our schedule against the code's at the same points of training. The code counts epochs
    as step / (images / batch), unfloored; ours drops each epoch's remainder (1251 steps for
    its 1251.1): compared epoch for epoch, away from the boundaries (whose steps differ by that
    fraction); the code's ``int(warmup_epochs * steps_per_epoch)`` costs it up to 1 step in
    3000 of warm-up."""
    for e in np.linspace(0.0, epochs, 997, endpoint=False):
        if min(abs(e - b) for b in boundaries) < 0.02:
            continue
        want = theirs(e * spe_theirs)  # both are formulas of the step: fractional steps work
        assert float(ours(e * spe_ours)) == pytest.approx(want, rel=5e-4, abs=1e-9), e


def test_resnet_schedule_follows_resnet_main():
    cfg = base.get_config("paper").train
    spe = 1281167 // 1024
    s = optim.make_schedule(cfg, spe, int(cfg.epochs * spe))
    _same_epochs(s, _tf_resnet_lr, spe, 1281167 / 1024, 90, (5, 30, 60, 80))


def _tf_efficientnet_lr(step, batch=2048, images=1281167):
    """efficientnet/utils.py:36-80 (exponential, staircase; warm-up 5 epochs), in numpy."""
    spe = images / batch
    initial = 0.016 * batch / 256.0
    lr = initial * 0.97 ** np.floor(step / (spe * 2.4))
    warmup = int(5 * spe)
    return initial * step / warmup if step < warmup else lr


def test_efficientnet_schedule_follows_utils_build_learning_rate():
    cfg = base.get_config("paper_efficientnet").train
    spe = 1281167 // 2048
    s = optim.make_schedule(cfg, spe, int(cfg.epochs * spe))
    bounds = (5.0, *(2.4 * k for k in range(1, 146)))
    _same_epochs(s, _tf_efficientnet_lr, spe, 1281167 / 2048, 350, bounds)


@pytest.mark.parametrize(
    "variant, dropout",
    [(f"b{i}", r) for i, r in enumerate((0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5))],
)
def test_efficientnet_recipe_has_each_variants_dropout(variant, dropout):
    # efficientnet_builder.py:39-46
    r = recipes.recipe("efficientnet", "paper", variant)
    assert (r["model.variant"], r["model.dropout"]) == (variant, dropout)
    c = base.config_from("paper", r)
    assert c.model.dropout == dropout and c.train.optimizer == "rmsprop"


def test_family_recipes_fix_every_key_that_differs_between_families():
    # a recipe applied on the ``paper`` base (as the sweeps do) is the family's own preset
    for model, preset in (("vit", "paper_vit"), ("efficientnet", "paper_efficientnet")):
        mixed = base.normalised(base.config_from("paper", recipes.recipe(model, "paper")))
        own = base.normalised(base.get_config(preset))
        assert {k: v for k, v in mixed.items() if k.startswith(("model.", "train."))} == {
            k: v for k, v in own.items() if k.startswith(("model.", "train."))
        }


def test_resnet_l2_set_is_every_variable_but_batchnorms():
    """resnet_main.py:474-478: ``tf.nn.l2_loss(v)`` for every trainable ``v`` whose name lacks
    ``batch_normalization``: the conv kernels, the dense kernel and the dense bias."""
    c = base.get_config("paper")
    model = build_model(c.model, 1000)
    params = jax.eval_shape(
        lambda: model.init({"params": jax.random.key(0)}, jnp.zeros((1, 64, 64, 3)))
    )["params"]
    mask = optim.decay_mask(params, c.train.weight_decay_on)
    flat = {
        "/".join(str(getattr(k, "key", k)) for k in path): m
        for path, m in jax.tree_util.tree_leaves_with_path(mask)
    }
    for name, decayed in flat.items():
        module, leaf = name.rsplit("/", 1)
        is_bn = re.fullmatch(r"(.*_)?bn\d*", module.rsplit("/", 1)[-1]) is not None
        assert decayed == (not is_bn), name
    assert flat["head/bias"] and flat["head/kernel"] and not flat["stem_bn/scale"]
