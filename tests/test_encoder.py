"""The open_clip wrapper: shapes, batching, fidelity to open_clip's own path, and load errors."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from mmembed import ConfigError, Encoder, ModelLoadError
from mmembed.models.encoder import ModelSpec

from conftest import FIXTURE_IMAGES, shared_path

PLAIN = ["red.jpg", "green.png", "blue.webp", "yellow.bmp", "purple.tiff", "UPPER.JPG"]


@pytest.fixture(scope="module")
def tiny(tiny_model: str) -> Encoder:
    return Encoder(tiny_model, batch_size=4).load()


def reference_vectors(model_name: str, paths) -> np.ndarray:
    """open_clip's documented path: encode_image(preprocess(Image.open(p).convert('RGB'))), normalised."""
    import open_clip
    import torch

    model, _, preprocess = open_clip.create_model_and_transforms(model_name)
    model.eval()
    with torch.no_grad():
        batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in paths])
        feats = model.encode_image(batch)
    feats = feats / feats.norm(dim=-1, keepdim=True)
    return feats.numpy()


def test_text_vectors_are_float32_unit_rows(tiny: Encoder) -> None:
    vecs = tiny.encode_text(["a cat", "a dog on grass", ""])
    assert vecs.shape == (3, 32) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vecs[0], vecs[1])


def test_image_vectors_accept_paths_and_pil(tiny: Encoder) -> None:
    paths = [FIXTURE_IMAGES / n for n in PLAIN]
    from_paths = tiny.encode_images(paths)
    from_pil = tiny.encode_images([Image.open(p).convert("RGB") for p in paths])
    assert from_paths.shape == (len(PLAIN), 32) and from_paths.dtype == np.float32
    np.testing.assert_allclose(from_paths, from_pil, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(from_paths, axis=1), 1.0, atol=1e-5)


def test_batch_size_does_not_change_vectors(tiny_model: str) -> None:
    paths = [FIXTURE_IMAGES / n for n in PLAIN]
    one = Encoder(tiny_model, batch_size=1).encode_images(paths)
    many = Encoder(tiny_model, batch_size=64).encode_images(paths)
    np.testing.assert_allclose(one, many, atol=1e-5)
    texts = ["one", "two words", "three little words"]
    np.testing.assert_allclose(
        Encoder(tiny_model, batch_size=1).encode_text(texts),
        Encoder(tiny_model, batch_size=8).encode_text(texts), atol=1e-5,
    )


def test_empty_input_gives_empty_matrix(tiny: Encoder) -> None:
    assert tiny.encode_text([]).shape == (0, 32)
    assert tiny.encode_images([]).shape == (0, 32)


def test_single_string_is_one_text(tiny: Encoder) -> None:
    """A lone string is one item (issue 15), as in sentence-transformers: never its characters."""
    one = tiny.encode_text("a cat")
    assert one.shape == (1, 32)
    np.testing.assert_allclose(one, tiny.encode_text(["a cat"]), atol=1e-6)
    with pytest.raises(ConfigError, match="texts takes a string"):
        tiny.encode_text([1, 2])


def test_fidelity_to_open_clip_tiny_model(tiny_model: str, tiny: Encoder) -> None:
    paths = [FIXTURE_IMAGES / n for n in PLAIN]
    ours = tiny.encode_images(paths)
    ref = reference_vectors(tiny_model, paths)
    cosines = (ours * ref).sum(axis=1)
    assert cosines.min() >= 0.999, cosines


def test_fidelity_to_open_clip_micro_clip_on_flickr_dev(micro_clip: str) -> None:
    dev = shared_path("data/flickr8k/dev")
    paths = sorted(dev.glob("*.jpg"))[:48]
    ours = Encoder(micro_clip, batch_size=16).encode_images(paths)
    ref = reference_vectors(micro_clip, paths)
    cosines = (ours * ref).sum(axis=1)
    assert cosines.min() >= 0.999, cosines.min()


def test_device_auto_picks_cpu_without_accelerator(tiny: Encoder) -> None:
    import torch

    if torch.cuda.is_available():
        assert tiny.device == "cuda"
    else:
        assert tiny.device in ("cpu", "mps")


def test_unavailable_cuda_is_a_config_error(tiny_model: str) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available on this machine, so asking for it is not an error")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        Encoder(tiny_model, device="cuda").load()


def test_an_unknown_device_is_a_config_error(tiny_model: str) -> None:
    with pytest.raises(ConfigError, match="device 'tpu' is not known; use one of auto, cpu, cuda, mps"):
        Encoder(tiny_model, device="tpu")


# ------------------------------------------------------------------ loading errors

def test_offline_hub_weights_fail_with_one_clear_line() -> None:
    enc = Encoder("ViT-B-32")  # default tag laion2b_s34b_b79k; HF_HUB_OFFLINE=1 and an empty HF_HOME
    assert enc.spec.pretrained == "laion2b_s34b_b79k"
    with pytest.raises(ModelLoadError) as info:
        enc.load()
    message = str(info.value)
    assert "\n" not in message
    assert "ViT-B-32 (laion2b_s34b_b79k)" in message
    assert "local-dir:PATH" in message


def test_missing_local_folder(tmp_path) -> None:
    with pytest.raises(ModelLoadError, match="not found.*local-dir:PATH"):
        Encoder(f"local-dir:{tmp_path / 'nope'}")


def test_local_folder_without_weights(tmp_path) -> None:
    (tmp_path / "open_clip_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match="holds no weights"):
        Encoder(f"local-dir:{tmp_path}")


def test_builtin_architecture_needs_a_tag() -> None:
    with pytest.raises(ConfigError, match="needs --pretrained TAG"):
        Encoder("ViT-L-14")


def test_unknown_architecture() -> None:
    with pytest.raises(ModelLoadError, match="unknown model 'ViT-Nope-1'"):
        Encoder("ViT-Nope-1", pretrained="x").load()


def test_local_fingerprint_follows_content_not_path(tmp_path, tiny_model: str) -> None:
    import shutil

    src = tiny_model.removeprefix("local-dir:")
    copy = tmp_path / "moved-model"
    shutil.copytree(src, copy)
    assert ModelSpec.resolve(f"local-dir:{copy}").fingerprint == ModelSpec.resolve(tiny_model).fingerprint
    weights = copy / "open_clip_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-10:] = b"0123456789"
    weights.write_bytes(bytes(data))
    assert ModelSpec.resolve(f"local-dir:{copy}").fingerprint != ModelSpec.resolve(tiny_model).fingerprint


def test_a_tables_pretrained_tag_goes_only_with_its_own_model(tiny_model: str) -> None:
    """A local-dir: model named over a table built with ViT-B-32 (laion2b_s34b_b79k) takes no
    pretrained tag from the table: the mismatch is then the table's to report, not a --pretrained
    the user never gave."""
    named = ModelSpec.resolve_over(tiny_model, None, "ViT-B-32", "laion2b_s34b_b79k")
    assert named.pretrained is None and named.name.startswith("local-dir:")
    recorded = ModelSpec.resolve_over(None, None, "ViT-B-32", "laion2b_s34b_b79k")
    assert (recorded.name, recorded.pretrained) == ("ViT-B-32", "laion2b_s34b_b79k")
    assert ModelSpec.resolve_over("ViT-B-32", None, "ViT-B-32", "laion2b_s34b_b79k").pretrained == "laion2b_s34b_b79k"
    with pytest.raises(ConfigError, match="drop --pretrained"):
        ModelSpec.resolve_over(tiny_model, "laion2b_s34b_b79k", "ViT-B-32", "laion2b_s34b_b79k")
