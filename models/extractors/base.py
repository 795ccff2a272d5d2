"""What every patch feature extractor is: uint8 RGB patches in, one vector per patch out.

An extractor is a ``torch.nn.Module`` with a :class:`ExtractorSpec` that says what it
expects (input size, normalisation), what it gives (output dimension) and where its
weights come from. :meth:`FeatureExtractor.prepare` turns a batch of uint8 patches as the
patch reader delivers them — ``(B, H, W, 3)``, channels last — into the normalised float
input of :meth:`~torch.nn.Module.forward`, on whatever device the batch lives on, so the
resize and normalisation run on the GPU when there is one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from slidescope.models.errors import ModelError
from torch import Tensor, nn

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ExtractorError(ModelError):
    """An extractor cannot be built: unknown name, missing or mismatched weights."""


class ExtractorWeightsError(ExtractorError):
    """A weights file is missing, unreadable, or does not fit the extractor."""


@dataclass(frozen=True)
class ExtractorSpec:
    """What an extractor expects and gives.

    Attributes
    ----------
    name : str
        The registry name, stored in every feature file (``extractor`` attribute).
    input_size : int or None
        Side in pixels the network wants; patches of another size are resized to it
        (bilinear, antialiased). None: any size is taken as it is.
    mean, std : tuple of float
        Per-channel normalisation applied to pixels scaled to [0, 1].
    feature_dim : int
        Length of the output vector of one patch.
    weights : str
        Where the weights come from, in words (shown by ``list_extractors``).
    needs_weights : bool
        True when the extractor is useless without a weights file.
    mixed_precision : bool
        True when autocast (bf16/fp16 on CUDA) is safe for it.
    version : str
        Changes whenever the same weights would give other features (feature files made
        by another version are extracted again).
    """

    name: str
    input_size: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    feature_dim: int
    weights: str
    needs_weights: bool = True
    mixed_precision: bool = True
    version: str = "1"


class FeatureExtractor(nn.Module):
    """Base class: subclasses set :attr:`spec` and implement ``forward(x) -> (B, D)``."""

    spec: ExtractorSpec

    _mean: Tensor
    _std: Tensor

    def __init__(self, spec: ExtractorSpec) -> None:
        super().__init__()
        self.spec = spec
        self.register_buffer("_mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    @property
    def feature_dim(self) -> int:
        return self.spec.feature_dim

    def prepare(self, patches: Tensor) -> Tensor:
        """uint8 ``(B, H, W, 3)`` patches -> normalised float ``(B, 3, S, S)``.

        The permuted view of a channels-last uint8 batch is already in
        ``torch.channels_last`` memory format, so nothing is copied to reorder it.
        """
        if patches.dtype != torch.uint8 or patches.ndim != 4 or patches.shape[-1] != 3:
            raise ValueError(f"expected uint8 (B, H, W, 3) patches, got {tuple(patches.shape)}")
        x = patches.permute(0, 3, 1, 2).to(self._mean.dtype).div_(255.0)
        size = self.spec.input_size
        if size is not None and (x.shape[-2] != size or x.shape[-1] != size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
            x = x.clamp_(0.0, 1.0)
        return (x - self._mean) / self._std


def load_state_dict_file(path: str | Path) -> dict[str, Tensor]:
    """Read a user's weights file safely: safetensors, or torch with ``weights_only=True``.

    The one safe reader of :mod:`slidescope.models.checkpoints` (tested against pickles that
    would run code), with its errors re-raised as :class:`ExtractorWeightsError`.
    """
    from slidescope.models.checkpoints import load_state_dict_file as read_weights
    from slidescope.models.errors import CheckpointError

    try:
        return read_weights(path)
    except CheckpointError as error:
        raise ExtractorWeightsError(str(error)) from None


def load_mapped_weights(
    module: nn.Module,
    state: Mapping[str, Tensor],
    source: str | Path,
    ignored_prefixes: tuple[str, ...] = (),
) -> None:
    """Load an already key-mapped state dict strictly, naming every missing/unexpected key.

    Keys the module lacks that start with one of ``ignored_prefixes`` (classifier heads,
    stages the extractor drops) are unexpected-but-ignored. Shape mismatches are reported the same way.
    """
    own = module.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(ignored_prefixes)}
    # BatchNorm's step counters are absent from some exports (timm) and unused in eval.
    for key in own:
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = own[key]
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        f"{k} (file {tuple(state[k].shape)}, model {tuple(own[k].shape)})"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or mismatched:
        parts = []
        for label, keys in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        ):
            if keys:
                shown = ", ".join(keys[:20]) + (
                    f", ... ({len(keys)} in all)" if len(keys) > 20 else ""
                )
                parts.append(f"{label}: {shown}")
        raise ExtractorWeightsError(
            f"{source}: the weights do not fit {type(module).__name__}; " + "; ".join(parts)
        )
    module.load_state_dict(state, strict=True)
