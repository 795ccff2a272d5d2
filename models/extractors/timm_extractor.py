"""``timm:<name>``: any timm model as an extractor, when timm is installed (optional extra).

The model is built with ``pretrained=False`` and ``num_classes=0`` (pooled features), then
loaded from the local weights file; timm never downloads anything here. Input size and
normalisation come from the model's ``pretrained_cfg``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from slidescope.models.extractors.base import (
    ExtractorError,
    ExtractorSpec,
    ExtractorWeightsError,
    FeatureExtractor,
    load_mapped_weights,
    load_state_dict_file,
)
from torch import Tensor, nn


def timm_available() -> bool:
    """True when timm can be imported."""
    try:
        import timm  # noqa: F401
    except ImportError:
        return False
    return True


class TimmExtractor(FeatureExtractor):
    """A timm model with its classifier removed: (B, 3, S, S) -> (B, num_features)."""

    def __init__(self, spec: ExtractorSpec, model: nn.Module) -> None:
        super().__init__(spec)
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)


def create_timm_extractor(
    name: str, weights: str | Path | None, allow_random: bool = False
) -> TimmExtractor:
    """Build ``timm.create_model(name, pretrained=False, num_classes=0)`` and load ``weights``."""
    try:
        import timm
    except ImportError:
        raise ExtractorError(
            f"timm:{name} needs timm, which is not installed; install the optional extra "
            "(pip install 'slidescope[timm]') or use a built-in extractor"
        ) from None
    try:
        model = timm.create_model(name, pretrained=False, num_classes=0)
    except RuntimeError as error:  # timm's "Unknown model"
        raise ExtractorError(f"timm:{name}: {error}") from None
    cfg: dict[str, Any] = dict(getattr(model, "pretrained_cfg", {}) or {})
    size = cfg.get("input_size", (3, 224, 224))[-1]
    spec = ExtractorSpec(
        name=f"timm:{name}",
        input_size=int(size),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))),
        std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        feature_dim=int(model.num_features),
        weights="local file (--weights): state dict of this timm model",
    )
    if weights is None:
        if not allow_random:
            raise ExtractorWeightsError(
                f"timm:{name} needs its weights: pass --weights FILE; nothing is downloaded"
            )
    else:
        state = load_state_dict_file(weights)
        load_mapped_weights(
            model, state, weights, ignored_prefixes=("head.", "fc.", "classifier.")
        )
    return TimmExtractor(spec, model)
