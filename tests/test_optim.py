"""Optimiser, schedule and loss of the trainer (trainer/optim.py), against hand-computed values."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sweeps import base
from trainer import optim


def _train(**overrides):
    return base.config_from("embedded", {f"train.{k}": v for k, v in overrides.items()}).train


def _constant_tx(**overrides):
    """The optimiser of ``_train(**overrides)`` on a constant LR (no warmup, batch 256)."""
    cfg = _train(schedule="constant", warmup_epochs=0.0, batch_size=256, **overrides)
    return optim.make_optimizer(cfg, optim.make_schedule(cfg, 10, 10))


def test_peak_lr_scales_with_batch():
    assert optim.peak_lr(_train(base_lr=0.1, batch_size=512)) == pytest.approx(0.2)
    assert optim.peak_lr(_train(base_lr=0.1, batch_size=64)) == pytest.approx(0.025)


def test_warmup_then_cosine_values():
    cfg = _train(base_lr=0.256, batch_size=256, warmup_epochs=2.0, schedule="cosine")
    spe, total = 10, 100
    s = optim.make_schedule(cfg, spe, total)
    peak = 0.256
    assert float(s(0)) == pytest.approx(0.0)
    assert float(s(10)) == pytest.approx(peak / 2, rel=1e-6)
    assert float(s(20)) == pytest.approx(peak, rel=1e-6)
    # Halfway through the cosine part: peak / 2; at the end: 0.
    assert float(s(60)) == pytest.approx(peak / 2, rel=1e-5)
    assert float(s(100)) == pytest.approx(0.0, abs=1e-7)
    assert float(s(99)) > 0.0


def test_step_schedule_boundaries():
    cfg = _train(
        base_lr=0.1,
        batch_size=256,
        warmup_epochs=1.0,
        schedule="step",
        step_boundaries=(0.5, 0.75),
        step_factor=0.1,
    )
    s = optim.make_schedule(cfg, steps_per_epoch=10, total_steps=100)
    assert float(s(5)) == pytest.approx(0.05)
    assert float(s(10)) == pytest.approx(0.1)
    assert float(s(49)) == pytest.approx(0.1)
    assert float(s(50)) == pytest.approx(0.01)
    assert float(s(74)) == pytest.approx(0.01)
    assert float(s(75)) == pytest.approx(0.001)
    assert float(s(99)) == pytest.approx(0.001)


def test_constant_schedule_without_warmup():
    s = optim.make_schedule(_train(schedule="constant", warmup_epochs=0.0), 10, 50)
    assert float(s(0)) == pytest.approx(optim.peak_lr(_train()))
    assert float(s(49)) == pytest.approx(optim.peak_lr(_train()))


def test_label_smoothing_matches_hand_computed():
    logits = jnp.array([[2.0, -1.0, 0.5, 0.0], [0.1, 0.2, 3.0, -2.0]])
    labels = jnp.array([0, 2])
    a, k = 0.2, 4
    logp = np.log(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))
    q = np.full((2, k), a / k)
    q[0, 0] += 1 - a
    q[1, 2] += 1 - a
    expected = -(q * logp).sum(-1)
    got = optim.cross_entropy(logits, labels, a)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-6)
    plain = optim.cross_entropy(logits, labels, 0.0)
    np.testing.assert_allclose(np.asarray(plain), -logp[[0, 1], [0, 2]], rtol=1e-6)


def _params():
    return {
        "conv": {"kernel": jnp.full((3, 3, 2, 4), 0.5), "bias": jnp.full((4,), 2.0)},
        "bn": {"scale": jnp.full((4,), 3.0)},
    }


def test_l2_term_is_added_on_kernels_only():
    cfg = _train(weight_decay=1e-2, weight_decay_mode="l2", label_smoothing=0.0)
    loss_fn = optim.make_loss_fn(cfg)
    logits = jnp.array([[1.0, 0.0]])
    labels = jnp.array([1])
    total, data = loss_fn(_params(), logits, labels)
    assert float(total - data) == pytest.approx(0.5 * 1e-2 * 72 * 0.25, rel=1e-6)
    # Decoupled mode adds nothing to the loss.
    total2, data2 = optim.make_loss_fn(_train(weight_decay_mode="decoupled"))(
        _params(), logits, labels
    )
    assert float(total2) == pytest.approx(float(data2))


@pytest.mark.parametrize("name", ["sgd", "adamw", "rmsprop"])
def test_decoupled_decay_applies_to_kernels_only(name):
    tx = _constant_tx(
        optimizer=name,
        weight_decay=0.1,
        weight_decay_mode="decoupled",
        base_lr=0.5,
    )
    params = _params()
    zero = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zero, tx.init(params), params)
    np.testing.assert_allclose(np.asarray(updates["conv"]["kernel"]), -0.5 * 0.1 * 0.5, rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(updates["conv"]["bias"]), 0.0)
    np.testing.assert_array_equal(np.asarray(updates["bn"]["scale"]), 0.0)


def test_sgd_nesterov_momentum_update():
    tx = _constant_tx(
        optimizer="sgd",
        momentum=0.9,
        nesterov=True,
        weight_decay=0.0,
        base_lr=0.1,
    )
    p = {"w": jnp.zeros((2, 2))}
    g = {"w": jnp.ones((2, 2))}
    st = tx.init(p)
    u1, st = tx.update(g, st, p)
    u2, st = tx.update(g, st, p)
    # Nesterov: v1 = g, step1 = g + 0.9 v1; v2 = g + 0.9 v1, step2 = g + 0.9 v2.
    np.testing.assert_allclose(np.asarray(u1["w"]), -0.1 * 1.9, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(u2["w"]), -0.1 * (1 + 0.9 * 1.9), rtol=1e-6)


def test_rmsprop_is_tf_style():
    tx = _constant_tx(
        optimizer="rmsprop",
        rmsprop_decay=0.9,
        rmsprop_eps=1e-3,
        momentum=0.9,
        weight_decay=0.0,
        base_lr=0.016,
    )
    p = {"w": jnp.zeros((3,))}
    g = {"w": jnp.array([0.5, -2.0, 4.0])}
    st = tx.init(p)
    u1, st = tx.update(g, st, p)
    u2, st = tx.update(g, st, p)
    gn = np.asarray(g["w"])
    ms1 = 0.9 * 1.0 + 0.1 * gn**2  # mean square starts at 1 (TF)
    m1 = gn / np.sqrt(ms1 + 1e-3)  # eps inside the square root (TF)
    ms2 = 0.9 * ms1 + 0.1 * gn**2
    m2 = 0.9 * m1 + gn / np.sqrt(ms2 + 1e-3)
    np.testing.assert_allclose(np.asarray(u1["w"]), -0.016 * m1, rtol=1e-5)
    np.testing.assert_allclose(np.asarray(u2["w"]), -0.016 * m2, rtol=1e-5)


def test_adamw_matches_optax_adamw():
    tx = _constant_tx(
        optimizer="adamw",
        weight_decay=0.3,
        weight_decay_mode="decoupled",
        base_lr=0.256,
    )
    ref = optax.adamw(0.256, b1=0.9, b2=0.999, weight_decay=0.3, mask=optim.kernel_mask)
    params = _params()
    g = jax.tree.map(lambda p: jnp.full_like(p, 0.3), params)
    a, _ = tx.update(g, tx.init(params), params)
    b, _ = ref.update(g, ref.init(params), params)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-6)


def test_grad_clip_limits_global_norm():
    tx = _constant_tx(
        optimizer="sgd",
        momentum=0.0,
        grad_clip=1.0,
        weight_decay=0.0,
        base_lr=0.256,
    )
    p = {"w": jnp.zeros((4,))}
    g = {"w": jnp.array([3.0, 4.0, 0.0, 0.0])}  # norm 5
    u, _ = tx.update(g, tx.init(p), p)
    np.testing.assert_allclose(np.asarray(u["w"]), -0.256 * np.array([0.6, 0.8, 0, 0]), rtol=1e-6)


def test_ema_update():
    e = optim.ema_update({"w": jnp.array([1.0])}, {"w": jnp.array([3.0])}, 0.75)
    assert float(e["w"][0]) == pytest.approx(1.5)


@pytest.mark.parametrize("preset", base.PRESETS)
def test_every_preset_recipe_builds_and_steps(preset):
    cfg = base.get_config(preset).train
    spe = 1251
    total = int(cfg.epochs * spe)
    s = optim.make_schedule(cfg, spe, total)
    peak = optim.peak_lr(cfg)
    warm = int(round(cfg.warmup_epochs * spe))
    # the exponential schedule counts its decay from step 0, warm-up included (tensorflow/tpu)
    decayed = lambda step: peak * 0.97 ** np.floor(step / (2.4 * spe))  # noqa: E731
    at_warm = decayed(warm) if cfg.schedule == "exponential" else peak
    assert float(s(warm)) == pytest.approx(at_warm, rel=1e-5)
    final = {"cosine": 0.0, "step": peak * 1e-3, "exponential": decayed(total)}[cfg.schedule]
    assert float(s(total)) == pytest.approx(final, rel=1e-5, abs=1e-6 * peak)
    tx = optim.make_optimizer(cfg, s)
    params = _params()
    state = tx.init(params)
    grads = jax.tree.map(lambda p: jnp.full_like(p, 0.01), params)
    for _ in range(3):
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))
    assert not np.array_equal(np.asarray(params["conv"]["kernel"]), 0.5)


def _net_params():
    """A conv + BatchNorm + dense + LayerNorm tree, as Flax names them."""
    return {
        "conv1": {"kernel": jnp.full((3, 3, 2, 4), 0.5)},
        "bn1": {"scale": jnp.full((4,), 3.0), "bias": jnp.full((4,), 1.0)},
        "block": {"ln": {"scale": jnp.full((4,), 2.0), "bias": jnp.full((4,), 1.0)}},
        "head": {"kernel": jnp.full((4, 2), 1.0), "bias": jnp.full((2,), 2.0)},
        "cls": jnp.full((1, 1, 4), 1.0),
    }


def test_decay_mask_kernels_and_non_norm():
    kernels = optim.decay_mask(_net_params(), "kernels")
    assert kernels["conv1"]["kernel"] and kernels["head"]["kernel"] and kernels["cls"]
    assert not kernels["head"]["bias"] and not kernels["bn1"]["scale"]
    non_norm = optim.decay_mask(_net_params(), "non_norm")
    assert non_norm["conv1"]["kernel"] and non_norm["head"]["kernel"] and non_norm["cls"]
    assert non_norm["head"]["bias"]  # tensorflow/tpu decays the dense bias too
    assert not any(jax.tree.leaves(non_norm["bn1"])) and not any(jax.tree.leaves(non_norm["block"]))


def test_l2_on_non_norm_is_tf_weight_decay_times_l2_loss():
    # resnet_main.py:474-478: loss += wd * sum(tf.nn.l2_loss(v)), l2_loss = sum(v ** 2) / 2
    cfg = _train(weight_decay=1e-2, weight_decay_on="non_norm", label_smoothing=0.0)
    total, data = optim.make_loss_fn(cfg)(_net_params(), jnp.array([[1.0, 0.0]]), jnp.array([1]))
    squares = 72 * 0.25 + 8 * 1.0 + 2 * 4.0 + 4 * 1.0  # conv, head kernel, head bias, cls
    assert float(total - data) == pytest.approx(1e-2 * squares / 2, rel=1e-6)


def test_exponential_schedule_counts_decay_from_step_zero():
    cfg = _train(
        base_lr=0.016,
        batch_size=256,
        schedule="exponential",
        warmup_epochs=5.0,
        exp_decay_epochs=2.4,
        exp_decay_factor=0.97,
    )
    s = optim.make_schedule(cfg, steps_per_epoch=10, total_steps=1000)
    assert float(s(25)) == pytest.approx(0.016 * 25 / 50)  # linear warm-up over 50 steps
    assert float(s(50)) == pytest.approx(0.016 * 0.97**2)  # floor(50 / 24) = 2 decays already
    assert float(s(71)) == pytest.approx(0.016 * 0.97**2)
    assert float(s(72)) == pytest.approx(0.016 * 0.97**3)
    assert float(s(999)) == pytest.approx(0.016 * 0.97**41, rel=1e-5)


def test_rmsprop_applies_the_lr_inside_the_momentum():
    # TF1 ApplyRMSProp: mom = m * mom + lr_t * g / sqrt(ms + eps); var -= mom. With an LR that
    # changes between steps the order matters.
    cfg = _train(
        optimizer="rmsprop",
        momentum=0.9,
        weight_decay=0.0,
        base_lr=1.0,
        batch_size=256,
        schedule="step",
        warmup_epochs=0.0,
        step_boundaries=(0.5,),
        step_factor=0.1,
    )
    tx = optim.make_optimizer(cfg, optim.make_schedule(cfg, 1, 2))
    p, g = {"w": jnp.zeros((1,))}, {"w": jnp.array([2.0])}
    st = tx.init(p)
    u1, st = tx.update(g, st, p)
    u2, st = tx.update(g, st, p)
    ms1 = 0.9 + 0.1 * 4.0
    ms2 = 0.9 * ms1 + 0.1 * 4.0
    mom1 = 1.0 * 2.0 / np.sqrt(ms1 + 1e-3)
    mom2 = 0.9 * mom1 + 0.1 * 2.0 / np.sqrt(ms2 + 1e-3)
    np.testing.assert_allclose(np.asarray(u1["w"]), [-mom1], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(u2["w"]), [-mom2], rtol=1e-5)


def test_ema_warmup_is_tf_num_updates():
    cfg = _train(ema_decay=0.9999, ema_warmup=True)
    assert float(optim.ema_decay_at(cfg, 1)) == pytest.approx(2 / 11)
    assert float(optim.ema_decay_at(cfg, 90)) == pytest.approx(91 / 100)
    assert float(optim.ema_decay_at(cfg, 10**6)) == pytest.approx(0.9999)
    assert optim.ema_decay_at(_train(ema_decay=0.99), 1) == 0.99  # without: constant
