"""Fusion math, the attention module's identity start, training, and stored weights."""

from __future__ import annotations

import numpy as np
import pytest

from mmembed import ConfigError, ModelMismatchError
from mmembed.models.fusion import (
    AttentionFusion, FusionConfig, FusionStrategy, _caption_table, fuse, fuse_query, load_attention, save_attention,
    train_attention,
)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture
def vectors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return unit(rng.normal(size=(20, 16))), unit(rng.normal(size=(20, 16))), unit(rng.normal(size=16))


def test_mean_is_normalised_weighted_sum(vectors) -> None:
    image, text, _ = vectors
    has = np.ones(20, bool)
    fused = fuse(image, text, has, FusionConfig("mean", 0.3))
    np.testing.assert_allclose(fused, unit(0.3 * image + 0.7 * text), atol=1e-6)


def test_concat_scores_are_weighted_sums_of_cosines(vectors) -> None:
    image, text, q = vectors
    config = FusionConfig("concat", 0.3)
    items = fuse(image, text, np.ones(20, bool), config)
    assert items.shape == (20, 32)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, atol=1e-6)
    scores = items @ fuse_query(config, None, q)
    np.testing.assert_allclose(scores, 0.3 * image @ q + 0.7 * text @ q, atol=1e-6)
    # ...and mean's scores are the same sums divided by a per-item norm.
    mean = fuse(image, text, np.ones(20, bool), FusionConfig("mean", 0.3)) @ q
    norms = np.linalg.norm(0.3 * image + 0.7 * text, axis=1)
    np.testing.assert_allclose(mean, scores / norms, atol=1e-5)


def test_composite_concat_query_uses_both_halves(vectors) -> None:
    image, text, q = vectors
    config = FusionConfig("concat", 0.25)
    items = fuse(image, text, np.ones(20, bool), config)
    qi, qt = unit(q + 0.1), unit(q - 0.1)
    scores = items @ fuse_query(config, qi, qt)
    np.testing.assert_allclose(scores, 0.25 * image @ qi + 0.75 * text @ qt, atol=1e-5)


def test_items_without_text_fall_back_to_the_image(vectors) -> None:
    image, text, _ = vectors
    has = np.zeros(20, bool)
    np.testing.assert_allclose(fuse(image, text, has, FusionConfig("mean")), image, atol=1e-6)
    concat = fuse(image, text, has, FusionConfig("concat", 0.2))
    np.testing.assert_allclose(concat[:, :16] / np.sqrt(0.2), image, atol=1e-6)
    np.testing.assert_allclose(concat[:, 16:] / np.sqrt(0.8), image, atol=1e-6)
    module = AttentionFusion(16, 0.2)
    np.testing.assert_allclose(fuse(image, text, has, FusionConfig("attention"), module), image, atol=1e-6)


def test_untrained_attention_equals_mean(vectors) -> None:
    image, text, _ = vectors
    has = np.array([True] * 15 + [False] * 5)
    module = AttentionFusion(16, 0.2)
    got = fuse(image, text, has, FusionConfig("attention", 0.2), module)
    np.testing.assert_allclose(got, fuse(image, text, has, FusionConfig("mean", 0.2)), atol=1e-6)


def synthetic_pairs(n: int = 300, dim: int = 32, seed: int = 0):
    """Items whose three captions share a hidden topic; images are noisier views of it."""
    rng = np.random.default_rng(seed)
    topics = unit(rng.normal(size=(n, dim)))
    image = unit(topics + 0.6 * rng.normal(size=(n, dim)))
    caps = unit(np.repeat(topics, 3, axis=0) + 0.3 * rng.normal(size=(3 * n, dim)))
    return image, caps, np.repeat(np.arange(n), 3)


def protocol_r1(image, caps, module=None) -> float:
    """Item = image + caption 0; query = caption 1; R@1 in percent."""
    a, b = caps[0::3], caps[1::3]
    config = FusionConfig("attention" if module is not None else "mean", 0.2)
    items = fuse(image, a, np.ones(len(image), bool), config, module)
    return float((np.argmax(b @ items.T, axis=1) == np.arange(len(image))).mean() * 100)


def test_training_improves_the_contrastive_task() -> None:
    image, caps, owner = synthetic_pairs()
    seen = []
    module, stats = train_attention(image, caps, owner, epochs=30, batch_size=64, image_mixup=0.0,
                                    progress=lambda e, t, l: seen.append(l))
    assert stats.items == 300 and stats.steps == 30 * 4 and len(seen) == 30
    assert float(module.out.weight.detach().abs().sum()) > 0  # no longer the identity start
    assert protocol_r1(image, caps, module) > protocol_r1(image, caps) + 2


def test_caption_table_lists_each_items_captions_in_order() -> None:
    members, counts = _caption_table(np.array([2, 0, 2, 1, 2, 0]), 4)
    assert counts.tolist() == [2, 1, 3, 0]
    assert members[0, :2].tolist() == [1, 5] and members[1, :1].tolist() == [3]
    assert members[2, :3].tolist() == [0, 2, 4]


def test_short_runs_train_at_a_constant_rate() -> None:
    """One-cycle cannot schedule a handful of steps; a tiny table with --epochs 1 still trains."""
    image, caps, owner = synthetic_pairs(n=40)
    module, stats = train_attention(image, caps, owner, epochs=1)
    assert stats.steps == 1 and np.isfinite(stats.final_loss)
    assert float(module.out.weight.detach().abs().sum()) > 0


def test_training_needs_items_with_two_captions() -> None:
    image, caps, _ = synthetic_pairs(n=20)
    with pytest.raises(ConfigError, match="at least two captions"):
        train_attention(image, caps[:20], np.arange(20))


def test_weights_round_trip_and_refuse_another_encoder() -> None:
    image, caps, owner = synthetic_pairs()
    text = caps[0::3]
    module, _ = train_attention(image, caps, owner, epochs=2, batch_size=64)
    blob = save_attention(module, "sha256:abc")
    again = load_attention(blob, "sha256:abc")
    has = np.ones(len(image), bool)
    np.testing.assert_allclose(module.fuse_numpy(image, text, has), again.fuse_numpy(image, text, has), atol=1e-6)
    with pytest.raises(ModelMismatchError, match="mmembed fusion train"):
        load_attention(blob, "sha256:other")


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="between 0 and 1"):
        FusionConfig("mean", 1.5)
    with pytest.raises(ValueError):
        FusionConfig("median")
    assert FusionConfig("concat").fused_dim(256) == 512
    assert FusionConfig.from_dict(FusionConfig("concat", 0.3).to_dict()) == FusionConfig(FusionStrategy.CONCAT, 0.3)
