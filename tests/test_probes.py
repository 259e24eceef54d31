"""The hypothesis probes (evaluator.probes, evaluator.frequency) on inputs with known answers."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from evaluator import frequency, probes
from evaluator.probes import Settings


def test_margin_of_a_distance_that_orders_unanimous_triplets_perfectly_is_positive():
    # p = 1: everyone chose p1 (near), so d0 is the far one; p = 0 the other way round;
    # p = 0.6 is not unanimous and is left out whatever its distances.
    d0 = np.array([3.0, 1.0, 2.0, 100.0])
    d1 = np.array([1.0, 2.0, 4.0, 0.0])
    judge = np.array([1.0, 0.0, 0.0, 0.6])
    s = probes.margin_stats(d0, d1, judge)
    assert s["n"] == 3
    assert s["far"] == pytest.approx((3 + 2 + 4) / 3) and s["near"] == pytest.approx(
        (1 + 1 + 2) / 3
    )
    assert s["margin"] == pytest.approx(5 / 3) and s["margin"] > 0
    assert s["relative"] == pytest.approx((5 / 3) / ((13 / 3) / 2), abs=1e-6)
    assert s["agree"] == 100.0
    # the same distances with the judgements flipped: every order wrong, negative margin
    flipped = probes.margin_stats(d0, d1, 1.0 - judge)
    assert flipped["margin"] == pytest.approx(-5 / 3) and flipped["agree"] == 0.0
    empty = probes.margin_stats(d0, d1, np.full(4, 0.5))
    assert empty == {"n": 0, "far": None, "near": None, "margin": None, "relative": None,
                     "agree": None}  # fmt: skip


def test_margins_per_category_pooled_and_per_tap():
    judges = {"a": np.array([1.0, 0.0, 0.5]), "b": np.array([0.0, 0.0])}
    # tap1 orders every unanimous triplet right, tap2 every one wrong and by less
    trip = {
        "a": {"local": {"t1": (np.array([2.0, 0.0, 9.0]), np.array([0.0, 2.0, 9.0])),
                        "t2": (np.array([0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0]))}},
        "b": {"local": {"t1": (np.array([0.0, 0.0]), np.array([2.0, 2.0])),
                        "t2": (np.array([1.0, 1.0]), np.array([0.0, 0.0]))}},
    }  # fmt: skip
    m = probes.margins(trip, judges, ["local"])
    assert m["n"] == {"pooled": 4, "categories": {"a": 2, "b": 2}}
    pooled = m["distances"]["local"]["pooled"]
    assert pooled["taps"]["t1"]["margin"] == pytest.approx(2.0)
    assert pooled["taps"]["t2"]["margin"] == pytest.approx(-1.0)
    assert pooled["all"]["margin"] == pytest.approx(1.0)  # the taps summed: 2 - 1
    assert pooled["all"]["n"] == 4
    cat_a = m["distances"]["local"]["categories"]["a"]
    assert cat_a["taps"]["t1"]["agree"] == 100.0 and cat_a["taps"]["t2"]["agree"] == 0.0


def test_entropy_of_constant_activations_is_one_and_of_one_peak_near_zero():
    const = jnp.full((2, 4, 4, 8), 0.7)
    np.testing.assert_allclose(probes.normalised_entropy(const), 1.0, rtol=1e-6)
    peak = jnp.zeros((1, 4, 4, 8)).at[0, 1, 2, 3].set(100.0)
    assert float(probes.normalised_entropy(peak)[0]) < 1e-3
    vec = jnp.array([[0.0, 0.0], [50.0, 0.0]])  # a ViT CLS tap: (N, C)
    np.testing.assert_allclose(probes.normalised_entropy(vec), [1.0, 0.0], atol=1e-6)
    x = np.random.default_rng(0).normal(size=(3, 2, 2, 5))
    p = np.exp(x.reshape(3, -1))
    p /= p.sum(1, keepdims=True)
    direct = -(p * np.log(p)).sum(1) / np.log(20)
    np.testing.assert_allclose(probes.normalised_entropy(jnp.asarray(x)), direct, rtol=1e-5)
    block = probes.entropy_block({"a": {"s1": np.array([0.2, 0.4])}, "b": {"s1": np.array([0.6])}})
    assert block == {"mean": pytest.approx(0.4), "taps": {"s1": pytest.approx(0.4)}}


def test_best_tap_per_distance():
    best = probes.best_taps(
        {"local": {"taps": {"s1": 60.0, "s2": 65.0, "s3": 65.0}}, "style": {"taps": {}}}
    )
    assert best == {"local": {"tap": "s2", "ps": 65.0}}


def test_dynamic_range_ceiling_and_simulated_curve():
    assert probes.ceiling([0.0, 1.0, 1.0, 0.0]) == 100.0
    assert probes.ceiling([0.5, 0.5]) == 50.0
    assert probes.ceiling([0.2, 0.9]) == pytest.approx(85.0)
    rng = np.random.default_rng(0)
    judges = {"a": rng.choice([0.0, 0.2, 0.5, 0.8, 1.0], 20000), "b": rng.uniform(0, 1, 20000)}
    dyn = probes.dynamic_range(judges)
    assert dyn["sigmas"][0] == 0.0 and dyn["ps"][0] == pytest.approx(dyn["ceiling"], abs=1e-3)
    assert dyn["ceiling"] == pytest.approx(
        np.mean([probes.ceiling(judges["a"]), probes.ceiling(judges["b"])]), abs=1e-3
    )
    assert all(a > b for a, b in zip(dyn["ps"][1:], dyn["ps"][2:], strict=False))  # falls
    assert dyn["ps"][0] - dyn["ps"][-1] > 20.0 and dyn["ps"][-1] < 53.0  # sigma 2: near chance
    for sigma, ps in zip(dyn["sigmas"], dyn["ps"], strict=True):  # within ~2 standard errors
        assert ps == pytest.approx(probes.expected_dynamic_ps(judges, sigma), abs=0.8)
    assert probes.dynamic_range(judges) == dyn  # seeded: the same every time


def test_settings_from_config_and_completeness():
    s = Settings.from_config({})
    assert s.probes and s.frequency and not s.calibrate and s.frequency_examples > 0
    assert not Settings.from_config({"frequency_examples": 0}).frequency
    assert not Settings.from_config({"probes": False, "frequency_examples": 9}).frequency
    full = {"distances": {"local": {}}, "probes": {}}
    assert s.block_complete(full) and not s.block_complete({"distances": {"local": {}}})
    cal = Settings.from_config({"calibrate": True})
    assert not cal.block_complete(full)
    assert cal.block_complete({"distances": {"local": {}, "lin": {}}, "probes": {}})
    assert s.record_complete({"frequency": {"r": []}}) and not s.record_complete({})


# ----------------------------------------------------------------------------- frequency


def test_filter_radii_and_masks():
    assert frequency.radii(64) == [4, 8, 16, 32, 40, 48, 56, 64]
    assert frequency.radii(16) == [1, 2, 4, 8, 10, 12, 14, 16]
    assert frequency.lowpass_mask(8, 8).min() == 1.0
    m = frequency.lowpass_mask(8, 2)
    assert m.sum() == 4 and m[3:5, 3:5].min() == 1.0  # centred on the zero frequency (index 4)
    with pytest.raises(ValueError, match="r=9"):
        frequency.lowpass_mask(8, 9)


def test_filter_of_full_size_is_the_identity_and_low_plus_high_is_the_image():
    x = np.random.default_rng(0).integers(0, 256, (3, 16, 16, 3)).astype(np.float32)
    full = frequency.apply_mask(x, frequency.lowpass_mask(16, 16))
    np.testing.assert_allclose(full, x, atol=1e-3)
    for r in (1, 4, 9):
        low = frequency.lowpass_mask(16, r)
        both = frequency.apply_mask(x, low) + frequency.apply_mask(x, 1.0 - low)
        np.testing.assert_allclose(both, x, atol=1e-3)
    dc = frequency.apply_mask(x, frequency.lowpass_mask(16, 1))  # only the zero frequency
    np.testing.assert_allclose(dc, np.broadcast_to(x.mean((1, 2), keepdims=True), x.shape),
                               atol=1e-3)  # fmt: skip


def test_low_slope_reads_the_high_r_part_of_the_curve():
    xs = [r / 64 for r in frequency.radii(64)]
    ys = [0.3 + 0.5 * x if x >= 0.6 else 0.0 for x in xs]  # linear, slope 0.5, in 5/8..7/8
    assert frequency.low_slope(xs, ys) == pytest.approx(0.5)
    assert frequency.low_slope([0.1, 0.2], [0.5, 0.6]) is None  # nothing in the range


def test_lin_is_not_an_unlearned_distance_in_the_config():
    from sweeps.base import ConfigError, config_from

    cfg = config_from("embedded", {"perceptual.calibrate": True, "perceptual.calibrate_steps": 5})
    assert cfg.perceptual.distances == "local,meanpool,style"
    with pytest.raises(ConfigError, match=r"lin: perceptual.calibrate=true"):
        config_from("embedded", {"perceptual.distances": "local,lin"})
    with pytest.raises(ConfigError, match="perceptual.frequency_examples=-1"):
        config_from("embedded", {"perceptual.frequency_examples": -1})
