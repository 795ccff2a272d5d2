"""Patch feature extractors: registry, the builtin descriptor, weight loading by key mapping."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from slidescope.models.extractors import (
    ExtractorError,
    ExtractorWeightsError,
    create_extractor,
    list_extractors,
)
from slidescope.models.extractors.base import IMAGENET_MEAN, OPENAI_CLIP_MEAN
from slidescope.models.extractors.builtin import BUILTIN_DIM
from slidescope.models.extractors.vit import ConchVisionExtractor, VisionTransformer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _patches(n: int, size: int = 64, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, size, size, 3), dtype=torch.uint8, generator=generator)


def _run(extractor: torch.nn.Module, patches: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return extractor(extractor.prepare(patches))


def test_registry_lists_the_families() -> None:
    names = list_extractors()
    for name in ("builtin", "resnet50-trunc", "uni", "conch", "virchow", "vit_test"):
        assert name in names
    assert "vit_large_patch16" in list_extractors("vit_*")
    with pytest.raises(ExtractorError, match=r"unknown extractor 'nope'.*builtin"):
        create_extractor("nope")


@pytest.mark.parametrize("name", ["builtin", "resnet50-trunc", "vit_test", "vit_test_swiglu"])
def test_every_small_extractor_gives_its_declared_dim(name: str) -> None:
    extractor = create_extractor(name, allow_random=True)
    spec = extractor.spec
    assert spec.name == name
    assert len(spec.mean) == len(spec.std) == 3
    features = _run(extractor, _patches(3, 48))
    assert features.shape == (3, spec.feature_dim)
    assert torch.isfinite(features).all()


def _he_patch(seed: int, lesion: bool, size: int = 128) -> np.ndarray:
    """Pink stroma with nuclei: sparse small ones, or (lesion) dense, large, dark, irregular."""
    from skimage import draw

    rng = np.random.default_rng(seed)
    image = np.empty((size, size, 3), dtype=np.uint8)
    image[:] = (195, 125, 165) if lesion else (225, 150, 190)
    image = np.clip(image + rng.integers(-10, 10, (size, size, 1)), 0, 255).astype(np.uint8)
    count, (r_major, r_minor), colour = (
        (45, (7, 4.5), (60, 25, 100)) if lesion else (14, (4, 3.5), (120, 70, 155))
    )
    for _ in range(count):
        rr, cc = draw.ellipse(
            *rng.uniform(0, size, 2),
            r_major,
            r_minor,
            shape=(size, size),
            rotation=rng.uniform(0, np.pi),
        )
        image[rr, cc] = colour
    return image


def test_builtin_is_per_patch_and_separates_dense_dark_nuclei() -> None:
    extractor = create_extractor("builtin")
    assert extractor.feature_dim == BUILTIN_DIM
    batch = torch.from_numpy(
        np.stack(
            [_he_patch(s, lesion=False) for s in range(4)] + [_he_patch(s, True) for s in range(4)]
        )
    )
    features = _run(extractor, batch)
    # a patch's features do not depend on its batch
    alone = _run(extractor, batch[5:6])
    assert torch.allclose(alone, features[5:6], atol=1e-5)
    # standardised distance between the groups is large against the spread within them
    z = (features - features.mean(0)) / (features.std(0) + 1e-6)
    gap = (z[:4].mean(0) - z[4:].mean(0)).norm()
    spread = max(z[:4].std(0).norm(), z[4:].std(0).norm())
    assert gap > 2 * spread


def test_builtin_refuses_weights(tmp_path) -> None:
    with pytest.raises(ExtractorWeightsError, match="no weights"):
        create_extractor("builtin", weights=tmp_path / "w.pt")


def test_prepare_resizes_and_normalises() -> None:
    extractor = create_extractor("resnet50-trunc", allow_random=True)
    white = torch.full((2, 256, 256, 3), 255, dtype=torch.uint8)
    x = extractor.prepare(white)
    assert x.shape == (2, 3, 224, 224)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(
        x[0, :, 0, 0],
        (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225]),
    )


def test_weights_are_required_without_allow_random() -> None:
    for name in ("resnet50-trunc", "uni", "vit_test"):
        with pytest.raises(ExtractorWeightsError, match="--weights"):
            create_extractor(name)


def test_resnet_loads_torchvision_naming_and_ignores_the_rest(tmp_path) -> None:
    source = create_extractor("resnet50-trunc", allow_random=True)
    state = {k: v.clone() for k, v in source.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 2048)  # torchvision's head and last stage
    state["layer4.0.conv1.weight"] = torch.zeros(512, 1024, 1, 1)
    no_counters = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "resnet50.pth"
    torch.save(no_counters, path)  # timm exports carry no BatchNorm counters
    loaded = create_extractor("resnet50-trunc", weights=path)
    patches = _patches(2, 224)
    assert torch.allclose(_run(loaded, patches), _run(source, patches), atol=1e-5)


def test_resnet_mismatch_lists_missing_and_unexpected_keys(tmp_path) -> None:
    source = create_extractor("resnet50-trunc", allow_random=True).state_dict()
    state = {k: v for k, v in source.items() if not k.startswith("layer3.5.")}
    state["stem.weird"] = torch.zeros(1)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(ExtractorWeightsError) as info:
        create_extractor("resnet50-trunc", weights=path)
    message = str(info.value)
    assert "missing keys: layer3.5.bn1.bias" in message
    assert "unexpected keys: stem.weird" in message
    assert "bad.safetensors" in message


def test_unreadable_weights_file(tmp_path) -> None:
    path = tmp_path / "w.pth"
    path.write_bytes(b"not a torch file")
    with pytest.raises(ExtractorWeightsError, match="cannot read weights"):
        create_extractor("resnet50-trunc", weights=path)
    with pytest.raises(ExtractorWeightsError, match="not found"):
        create_extractor("resnet50-trunc", weights=tmp_path / "none.pth")


@pytest.mark.parametrize("name", ["vit_test", "vit_test_swiglu"])
def test_vit_loads_a_timm_style_state_dict_strictly(name: str, tmp_path) -> None:
    source = create_extractor(name, allow_random=True)
    # timm names: the trunk's keys without our "trunk." prefix, plus a classifier head
    state = {k.removeprefix("trunk."): v.clone() for k, v in source.state_dict().items()}
    assert "pos_embed" in state
    assert "blocks.0.attn.qkv.weight" in state
    state["head.weight"] = torch.zeros(10, 32)
    state["head.bias"] = torch.zeros(10)
    path = tmp_path / f"{name}.safetensors"
    save_file(state, str(path))
    loaded = create_extractor(name, weights=path)
    patches = _patches(2, 32)
    assert torch.allclose(_run(loaded, patches), _run(source, patches), atol=1e-5)
    # a 48 px patch is resized to the declared 32 px input
    assert _run(loaded, _patches(1, 48)).shape == (1, loaded.feature_dim)
    # a missing block is named
    del state["blocks.1.norm1.weight"]
    save_file(state, str(path))
    with pytest.raises(ExtractorWeightsError, match=r"missing keys: trunk\.blocks\.1\.norm1"):
        create_extractor(name, weights=path)


def test_vit_register_tokens_and_layerscale_layout() -> None:
    extractor = create_extractor("vit_test", allow_random=True)
    keys = extractor.state_dict().keys()
    assert "trunk.reg_token" in keys
    assert "trunk.blocks.0.ls1.gamma" in keys
    assert extractor.trunk.num_prefix_tokens == 3
    assert extractor.trunk.pos_embed.shape == (1, 16 + 3, 32)


def test_conch_vision_tower_key_mapping(tmp_path) -> None:
    trunk = VisionTransformer(img_size=32, patch_size=8, dim=32, depth=1, heads=2)
    spec = create_extractor("vit_test", allow_random=True).spec
    source = ConchVisionExtractor(spec, trunk, out_dim=16).eval()
    state = {}
    for key, value in source.state_dict().items():
        key = "trunk." + key[6:] if key.startswith("trunk.") else key
        state["visual." + key] = value.clone()
    state["visual.proj_contrast"] = torch.zeros(16, 16)
    state["text.token_embedding.weight"] = torch.zeros(5, 4)
    path = tmp_path / "conch.safetensors"
    save_file(state, str(path))
    target = ConchVisionExtractor(spec, VisionTransformer(32, 8, 32, 1, 2), out_dim=16).eval()
    target.load_timm_state(state, path)
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(target(x), source(x), atol=1e-5)
        assert target(x).shape == (2, 16)


def test_named_foundation_models_declare_their_published_setup() -> None:
    # built on the meta device: the published shapes without allocating ViT-H weights
    with torch.device("meta"):
        uni, conch, virchow = (
            create_extractor(name, allow_random=True, device="meta")
            for name in ("uni", "conch", "virchow")
        )
    assert (uni.spec.input_size, uni.spec.feature_dim) == (224, 1024)
    assert (conch.spec.input_size, conch.spec.feature_dim) == (448, 512)
    assert (virchow.spec.input_size, virchow.spec.feature_dim) == (224, 2560)
    assert uni.spec.mean == virchow.spec.mean == IMAGENET_MEAN
    assert conch.spec.mean == OPENAI_CLIP_MEAN
    assert len(virchow.trunk.blocks) == 32
    assert len(uni.trunk.blocks) == 24
    assert virchow.trunk.blocks[0].mlp.fc1.weight.shape == (6832, 1280)
    assert virchow.trunk.blocks[0].mlp.fc2.weight.shape == (1280, 3416)


@pytest.mark.skipif(importlib.util.find_spec("timm") is not None, reason="timm is installed")
def test_timm_names_need_timm() -> None:
    with pytest.raises(ExtractorError, match="needs timm"):
        create_extractor("timm:resnet18", allow_random=True)


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm is not installed")
def test_timm_model_by_name() -> None:  # pragma: no cover - timm is optional
    extractor = create_extractor("timm:resnet18", allow_random=True)
    assert _run(extractor, _patches(1, 224)).shape == (1, extractor.feature_dim)


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 9])
def test_builtin_window_filters_match_pooling(k: int) -> None:
    from slidescope.models.extractors import builtin as b

    x = torch.rand(3, 1, 23, 17)
    # reference: k x k maximum over the window [i - k//2, i + k - 1 - k//2], borders ignored
    lo, hi = k // 2, k - 1 - k // 2
    padded = torch.nn.functional.pad(x, (lo, hi, lo, hi), value=float("-inf"))
    reference = torch.nn.functional.max_pool2d(padded, k, stride=1)
    assert torch.equal(b._window_max(x, k), reference)
    mask = x > 0.4
    assert torch.equal(b._window_max_bool(mask, k), reference > 0.4)
    eroded = -torch.nn.functional.max_pool2d(
        torch.nn.functional.pad(-mask.float(), (lo, hi, lo, hi), value=float("-inf")), k, stride=1
    )
    assert torch.equal(b._window_min_bool(mask, k), eroded > 0.5)


def test_builtin_prepare_pools_like_averaging_the_float_patch() -> None:
    from slidescope.models.extractors.base import FeatureExtractor

    extractor = create_extractor("builtin")
    patches = torch.randint(0, 256, (2, 128, 96, 3), dtype=torch.uint8)
    pooled = extractor.prepare(patches)
    reference = torch.nn.functional.avg_pool2d(FeatureExtractor.prepare(extractor, patches), 2)
    assert pooled.shape == (2, 3, 64, 48)
    assert torch.allclose(pooled, reference, atol=1e-6)
    # odd and small patches take the general path and still give every feature, finite
    for shape in ((1, 65, 67, 3), (1, 40, 40, 3)):
        features = _run(extractor, torch.randint(0, 256, shape, dtype=torch.uint8))
        assert features.shape == (1, BUILTIN_DIM)
        assert torch.isfinite(features).all()
