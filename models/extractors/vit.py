"""Vision transformers in timm's layout, for pathology foundation models loaded by key mapping.

Module names follow timm's ``VisionTransformer`` (``patch_embed.proj``, ``cls_token``,
``reg_token``, ``pos_embed``, ``blocks.{i}.norm1/attn.qkv/attn.proj/ls1.gamma/norm2/mlp.*``,
``norm``), so a timm state dict loads strictly after stripping wrapper prefixes; heads are
ignored. Supported: ViT-S/B/L/H with patch 14 or 16, register tokens, LayerScale, GELU MLP,
SwiGLU (``mlp.fc1_g``/``fc1_x``, UNI2-style) and packed SwiGLU (``mlp.fc1`` of twice the
hidden width, Virchow-style); output the class token, or the class token concatenated with
the mean patch token (Virchow).

Named models (published input size and normalisation; each needs ``--weights``):

- ``uni``: UNI (Chen et al. 2024), timm ``vit_large_patch16_224`` with LayerScale,
  224 px, ImageNet normalisation, 1,024-d class token.
- ``virchow``: Virchow (Vorontsov et al. 2024), ViT-H/14, packed SwiGLU (hidden 6,832),
  LayerScale, 224 px, ImageNet normalisation, 2,560-d = class token + mean patch token.
- ``conch``: the vision tower of CONCH (Lu et al. 2024): a timm ViT-B/16 at 448 px under
  ``visual.trunk.``, then ``visual.attn_pool_contrast`` (one-query attentional pooler,
  768 -> 512) and ``visual.ln_contrast``: the 512-d embedding CONCH gives with
  ``encode_image(proj_contrast=False)`` (its linear-probe features), OpenAI CLIP
  normalisation. The text tower and ``proj_contrast`` are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from slidescope.models.extractors.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    OPENAI_CLIP_MEAN,
    OPENAI_CLIP_STD,
    ExtractorSpec,
    ExtractorWeightsError,
    FeatureExtractor,
    load_mapped_weights,
    load_state_dict_file,
)
from slidescope.models.extractors.registry import register_extractor
from torch import Tensor, nn

_WRAPPER_PREFIXES = ("module.", "model.", "backbone.", "encoder.")
_IGNORED_PREFIXES = ("head.", "fc_norm.", "head_drop.", "text.", "logit_scale")


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class SwiGLUPacked(nn.Module):
    """timm ``GluMlp(act=SiLU, gate_last=False)``: ``fc1`` gives gate and value halves."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden // 2, dim)

    def forward(self, x: Tensor) -> Tensor:
        gate, value = self.fc1(x).chunk(2, dim=-1)
        return self.fc2(F.silu(gate) * value)


class SwiGLU(nn.Module):
    """timm ``SwiGLU``: separate gate (``fc1_g``) and value (``fc1_x``) projections."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1_g = nn.Linear(dim, hidden)
        self.fc1_x = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.silu(self.fc1_g(x)) * self.fc1_x(x))


_MLPS: dict[str, Callable[[int, int], nn.Module]] = {
    "gelu": Mlp,
    "swiglu_packed": SwiGLUPacked,
    "swiglu": SwiGLU,
}


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class LayerScale(nn.Module):
    def __init__(self, dim: int, init: float) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim,), init))

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gamma


class Block(nn.Module):
    def __init__(
        self, dim: int, heads: int, hidden: int, mlp: str, init_values: float | None
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.ls1 = LayerScale(dim, init_values) if init_values else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = _MLPS[mlp](dim, hidden)
        self.ls2 = LayerScale(dim, init_values) if init_values else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.ls1(self.attn(self.norm1(x)))
        return x + self.ls2(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, patch: int, dim: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(x)


class VisionTransformer(nn.Module):
    """A timm-layout ViT trunk: image -> normalised tokens ``(B, prefix + N, D)``."""

    def __init__(
        self,
        img_size: int = 224,
        patch_size: int = 16,
        dim: int = 768,
        depth: int = 12,
        heads: int = 12,
        mlp_ratio: float = 4.0,
        mlp: str = "gelu",
        reg_tokens: int = 0,
        no_embed_class: bool = False,
        init_values: float | None = None,
    ) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.grid = img_size // patch_size
        self.num_prefix_tokens = 1 + reg_tokens
        self.no_embed_class = no_embed_class
        self.patch_embed = PatchEmbed(patch_size, dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.reg_token = nn.Parameter(torch.zeros(1, reg_tokens, dim)) if reg_tokens else None
        n_pos = self.grid**2 + (0 if no_embed_class else self.num_prefix_tokens)
        self.pos_embed = nn.Parameter(torch.randn(1, n_pos, dim) * 0.02)
        hidden = int(dim * mlp_ratio)
        self.blocks = nn.Sequential(
            *(Block(dim, heads, hidden, mlp, init_values) for _ in range(depth))
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.patch_embed(x)
        gh, gw = tokens.shape[-2:]
        tokens = tokens.flatten(2).transpose(1, 2)
        prefix = [self.cls_token.expand(tokens.shape[0], -1, -1)]
        if self.reg_token is not None:
            prefix.append(self.reg_token.expand(tokens.shape[0], -1, -1))
        pos = self._pos_embed(gh, gw)
        if self.no_embed_class:
            tokens = torch.cat([*prefix, tokens + pos], dim=1)
        else:
            tokens = torch.cat([*prefix, tokens], dim=1) + pos
        return self.norm(self.blocks(tokens))

    def _pos_embed(self, gh: int, gw: int) -> Tensor:
        """Position embeddings, resampled (bicubic, as timm) when the grid differs."""
        n_prefix = 0 if self.no_embed_class else self.num_prefix_tokens
        if gh == gw == self.grid:
            return self.pos_embed
        prefix, grid = self.pos_embed[:, :n_prefix], self.pos_embed[:, n_prefix:]
        side = int(math.sqrt(grid.shape[1]))
        grid = grid.reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([prefix, grid.permute(0, 2, 3, 1).flatten(1, 2)], dim=1)


class ViTExtractor(FeatureExtractor):
    """A ViT trunk plus the output its model publishes (class token, or class + mean)."""

    def __init__(self, spec: ExtractorSpec, trunk: VisionTransformer, output: str) -> None:
        super().__init__(spec)
        if output not in ("cls", "cls+mean"):
            raise ValueError(f"unknown ViT output {output!r}")
        self.trunk = trunk
        self.output = output

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.trunk(x)
        cls = tokens[:, 0]
        if self.output == "cls":
            return cls
        return torch.cat([cls, tokens[:, self.trunk.num_prefix_tokens :].mean(1)], dim=-1)

    def load_timm_state(self, state: dict[str, Tensor], source: str | Path) -> None:
        """Load a timm ``VisionTransformer`` state dict (wrapper prefixes stripped)."""
        mapped = {"trunk." + _strip_wrappers(k): v for k, v in state.items()}
        ignored = tuple("trunk." + p for p in _IGNORED_PREFIXES)
        load_mapped_weights(self, mapped, source, ignored_prefixes=ignored)


class ConchVisionExtractor(ViTExtractor):
    """CONCH's vision tower: ViT-B/16 trunk, attentional pooler, LayerNorm -> 512-d."""

    def __init__(self, spec: ExtractorSpec, trunk: VisionTransformer, out_dim: int = 512) -> None:
        super().__init__(spec, trunk, "cls")
        dim = trunk.norm.normalized_shape[0]
        self.attn_pool_contrast = AttentionalPooler(out_dim, dim, heads=8)
        self.ln_contrast = nn.LayerNorm(out_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.ln_contrast(self.attn_pool_contrast(self.trunk(x))[:, 0])

    def load_timm_state(self, state: dict[str, Tensor], source: str | Path) -> None:
        mapped = {}
        for key, value in state.items():
            key = _strip_wrappers(key).removeprefix("visual.")
            mapped["trunk." + key[6:] if key.startswith("trunk.") else key] = value
        ignored = (
            "proj_contrast",
            "attn_pool_caption.",
            "ln_caption.",
            "text.",
            "logit_scale",
            *("trunk." + p for p in _IGNORED_PREFIXES),
        )
        load_mapped_weights(self, mapped, source, ignored_prefixes=ignored)


class AttentionalPooler(nn.Module):
    """open_clip's ``AttentionalPooler``: learned queries cross-attend to the tokens."""

    def __init__(self, d_model: int, context_dim: int, heads: int = 8, queries: int = 1) -> None:
        super().__init__()
        self.query = nn.Parameter(torch.randn(queries, d_model))
        self.attn = nn.MultiheadAttention(d_model, heads, kdim=context_dim, vdim=context_dim)
        self.ln_q = nn.LayerNorm(d_model)
        self.ln_k = nn.LayerNorm(context_dim)

    def forward(self, x: Tensor) -> Tensor:
        keys = self.ln_k(x).permute(1, 0, 2)  # (N, B, C): sequence first, as open_clip
        query = self.ln_q(self.query).unsqueeze(1).expand(-1, keys.shape[1], -1)
        out = self.attn(query, keys, keys, need_weights=False)[0]
        return out.permute(1, 0, 2)


def _strip_wrappers(key: str) -> str:
    for prefix in _WRAPPER_PREFIXES:
        key = key.removeprefix(prefix)
    return key


# -- registry entries ------------------------------------------------------------------------

_SIZES: dict[str, dict[str, Any]] = {
    "test": {"dim": 32, "depth": 2, "heads": 2},
    "small": {"dim": 384, "depth": 12, "heads": 6},
    "base": {"dim": 768, "depth": 12, "heads": 12},
    "large": {"dim": 1024, "depth": 24, "heads": 16},
    "huge": {"dim": 1280, "depth": 32, "heads": 16},
}


def _build(
    name: str,
    weights: Path | None,
    allow_random: bool,
    size: str,
    patch: int,
    img_size: int = 224,
    mean: tuple[float, float, float] = IMAGENET_MEAN,
    std: tuple[float, float, float] = IMAGENET_STD,
    output: str = "cls",
    conch: bool = False,
    weights_note: str = "local file (--weights): timm ViT state dict",
    **trunk_kw: Any,
) -> ViTExtractor:
    if weights is None and not allow_random:
        raise ExtractorWeightsError(
            f"{name} needs its pretrained weights: pass --weights FILE (a local "
            ".safetensors or PyTorch state dict); nothing is downloaded, and random "
            "weights give useless features"
        )
    sizes = _SIZES[size]
    trunk = VisionTransformer(img_size=img_size, patch_size=patch, **sizes, **trunk_kw)
    dim = 512 if conch else sizes["dim"] * (2 if output == "cls+mean" else 1)
    spec = ExtractorSpec(
        name=name, input_size=img_size, mean=mean, std=std, feature_dim=dim, weights=weights_note
    )
    model = ConchVisionExtractor(spec, trunk) if conch else ViTExtractor(spec, trunk, output)
    if weights is None:
        return model
    model.load_timm_state(load_state_dict_file(weights), weights)
    return model


def _register_generic(size: str, patch: int) -> None:
    name = f"vit_{size}_patch{patch}"

    def constructor(
        weights: Path | None = None, allow_random: bool = False, **kw: Any
    ) -> ViTExtractor:
        return _build(name, weights, allow_random, size, patch, **kw)

    constructor.__doc__ = f"timm-layout ViT-{size} with {patch}-px patches (options as kwargs)."
    register_extractor(name)(constructor)


for _size in ("small", "base", "large", "huge"):
    for _patch in (14, 16):
        _register_generic(_size, _patch)

register_extractor("vit_test")(
    partial(_build, "vit_test", size="test", patch=8, img_size=32, reg_tokens=2, init_values=1e-5)
)
register_extractor("vit_test_swiglu")(
    partial(
        _build,
        "vit_test_swiglu",
        size="test",
        patch=8,
        img_size=32,
        mlp="swiglu_packed",
        mlp_ratio=2.5,
        output="cls+mean",
    )
)
register_extractor("uni")(
    partial(
        _build,
        "uni",
        size="large",
        patch=16,
        init_values=1e-5,
        weights_note="local file (--weights): UNI pytorch_model.bin (MahmoodLab/UNI)",
    )
)
register_extractor("virchow")(
    partial(
        _build,
        "virchow",
        size="huge",
        patch=14,
        mlp="swiglu_packed",
        mlp_ratio=5.3375,
        init_values=1e-5,
        output="cls+mean",
        weights_note="local file (--weights): Virchow pytorch_model.bin (paige-ai/Virchow)",
    )
)
register_extractor("conch")(
    partial(
        _build,
        "conch",
        size="base",
        patch=16,
        img_size=448,
        mean=OPENAI_CLIP_MEAN,
        std=OPENAI_CLIP_STD,
        conch=True,
        weights_note="local file (--weights): CONCH pytorch_model.bin (MahmoodLab/CONCH)",
    )
)
