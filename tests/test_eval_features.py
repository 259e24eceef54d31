"""ScoringModel: the trainer's preprocessing, batching/padding, EMA choice, ViT grid resizing."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from evaluator.distances import TAP_FUNCTIONS
from evaluator.features import ScoringModel
from sweeps.base import get_config


def _resnet_cfg():
    cfg = get_config().to_dict()
    cfg["model"].update(depth=6, width=0.25)
    cfg["data"]["image_size"] = 16
    return cfg


def _init(cfg, size):
    from trainer.models import build_model

    model = build_model(cfg["model"], cfg["data"]["num_classes"])
    x = np.zeros((1, size, size, 3), np.float32)
    init = jax.jit(lambda k, x: model.init({"params": k}, x, train=False))  # faster than eager
    return model, dict(init(jax.random.key(0), x))


def _images(rng, n):
    return rng.integers(0, 256, size=(n, 64, 64, 3), dtype=np.uint8)


def test_distances_match_direct_apply_with_padded_batches():
    from trainer.data import normalize

    cfg = _resnet_cfg()
    model, variables = _init(cfg, 16)
    rng = np.random.default_rng(0)
    ref, p0, p1 = (_images(rng, 5) for _ in range(3))
    small = ScoringModel.from_variables(cfg, variables, batch_size=2)  # 3 batches, last padded
    assert small.resolution == {
        "trained": 16,
        "scored": 64,
        "how": "fully convolutional, applied as is",
    }
    a = small.triplet_distances(ref, p0, p1)
    apply = jax.jit(lambda v, x: model.apply(v, normalize(x), train=False, taps=True)[1])
    taps_r, taps_0, taps_1 = (apply(variables, x) for x in (ref, p0, p1))
    assert set(a["local"]) == set(small.tap_names) == {"stage1", "stage2", "stage3", "stage4"}
    for kind in ("local", "meanpool", "style"):
        for tap in small.tap_names:
            assert a[kind][tap][0].shape == (5,)
            # 5 triplets in batches of 2: the padded last batch must not leak into results
            for i, taps_x in ((0, taps_0), (1, taps_1)):
                direct = TAP_FUNCTIONS[kind](taps_r[tap], taps_x[tap])
                np.testing.assert_allclose(a[kind][tap][i], direct, rtol=1e-4, atol=1e-7)
    pairs = small.pair_distances(ref, p0)
    np.testing.assert_allclose(pairs["local"]["stage2"], a["local"]["stage2"][0], rtol=1e-4)
    empty = small.triplet_distances(ref[:0], p0[:0], p1[:0])
    assert empty["style"]["stage4"][1].shape == (0,)


def test_ema_parameters_are_used_when_the_run_kept_them():
    cfg = _resnet_cfg()
    _, variables = _init(cfg, 16)
    ema = jax.tree.map(lambda x: x * 0.5, variables["params"])
    sm = ScoringModel.from_variables(cfg, {**variables, "ema_params": ema})
    assert sm.params_used == "ema_params"
    assert sm.native_variables is None  # a ResNet is applied as trained at any resolution
    leaf = jax.tree.leaves(sm.variables["params"])[0]
    np.testing.assert_allclose(leaf, jax.tree.leaves(ema)[0])
    assert ScoringModel.from_variables(cfg, variables).params_used == "params"


def test_vit_position_embeddings_resized_to_the_64px_grid():
    cfg = get_config().to_dict()
    cfg["model"].update(
        name="vit",
        variant="Ti/8",
        depth=2,
        width=1.0,
        hidden_size=16,
        mlp_dim=32,
        num_heads=2,
    )
    cfg["data"]["image_size"] = 32
    _, variables = _init(cfg, 32)
    pos = np.asarray(variables["params"]["pos_embedding"])
    assert pos.shape == (1, 1 + 4 * 4, 16)
    # a grid constant per channel stays that constant; the CLS row is kept
    grid = np.broadcast_to(np.arange(16, dtype=np.float32), (1, 16, 16))
    pos = np.concatenate([np.full((1, 1, 16), 7.0, np.float32), grid], axis=1)
    variables["params"] = {**variables["params"], "pos_embedding": pos}
    sm = ScoringModel.from_variables(cfg, variables, batch_size=4)
    new = np.asarray(sm.variables["params"]["pos_embedding"])
    assert new.shape == (1, 1 + 8 * 8, 16)
    np.testing.assert_allclose(new[0, 0], 7.0)
    np.testing.assert_allclose(new[0, 1:], np.broadcast_to(np.arange(16), (64, 16)), atol=1e-5)
    assert "interpolated" in sm.resolution["how"] and "4x4 to 8x8" in sm.resolution["how"]
    rng = np.random.default_rng(0)
    d = sm.triplet_distances(*(_images(rng, 3) for _ in range(3)))
    assert set(d["local"]) == {"block1", "block2"}
    assert all(np.all(np.isfinite(v[0])) and v[0].shape == (3,) for v in d["style"].values())
    # the frequency probe runs at the trained resolution, with the trained position embeddings
    from evaluator.frequency import frequency_probe

    assert sm.native_variables["params"]["pos_embedding"].shape == (1, 1 + 4 * 4, 16)
    imgs = rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    freq = frequency_probe(sm, imgs, np.arange(6, dtype=np.int32) % 10, {})
    assert freq["image_size"] == 32 and freq["r"][-1] == 32 and freq["examples"] == 6


def test_missing_trial_config_is_one_line(tmp_path):
    from evaluator.features import CheckpointError, read_trial_config

    with pytest.raises(CheckpointError, match="config.json is missing"):
        read_trial_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        read_trial_config(tmp_path)


def test_resident_images_go_to_the_device_once_and_score_the_same():
    import gc

    from evaluator import features

    cfg = _resnet_cfg()
    _, variables = _init(cfg, 16)
    rng = np.random.default_rng(5)
    ref, p0, p1 = (_images(rng, 5) for _ in range(3))
    host = ScoringModel.from_variables(cfg, variables, batch_size=2, resident=False)
    assert ScoringModel.from_variables(cfg, variables).resident is False  # auto: not on a CPU
    before = len(features._RESIDENT)
    dev = ScoringModel.from_variables(cfg, variables, batch_size=2, resident=True)
    a, b = host.triplet_distances(ref, p0, p1), dev.triplet_distances(ref, p0, p1)
    assert len(features._RESIDENT) == before + 3  # ref, p0, p1: 3 padded batches of 2 each
    for kind in a:
        for tap in a[kind]:
            for i in (0, 1):
                np.testing.assert_allclose(b[kind][tap][i], a[kind][tap][i], rtol=1e-6)
    # another checkpoint's model with the same batch reuses the copies; pairs reuse p0 and p1
    other = ScoringModel.from_variables(cfg, variables, batch_size=2, resident=True)
    other.triplet_distances(ref, p0, p1)
    pairs = other.pair_distances(p0, p1)
    assert len(features._RESIDENT) == before + 3
    np.testing.assert_allclose(
        pairs["local"]["stage1"], host.pair_distances(p0, p1)["local"]["stage1"], rtol=1e-6
    )
    del ref, p0, p1
    gc.collect()
    assert len(features._RESIDENT) == before  # the copies go with the host arrays
