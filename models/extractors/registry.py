"""A registry of patch feature extractors in the style of timm: an extractor is a name.

``create_extractor("builtin")``, ``create_extractor("resnet50-trunc", weights="r50.pth")``,
``create_extractor("uni", weights="uni.safetensors")``, ``create_extractor("timm:<name>",
weights=...)`` when timm is installed. No weight is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from slidescope.models.extractors.base import ExtractorError, FeatureExtractor
from slidescope.models.registry import Registry

F = TypeVar("F", bound=Callable[..., FeatureExtractor])

_EXTRACTORS: Registry[Callable[..., FeatureExtractor]] = Registry(
    "extractor",
    "slidescope.models.extractors",
    ExtractorError,
    hint=" (or timm:<name> when timm is installed)",
)


def register_extractor(name: str) -> Callable[[F], F]:
    """Register ``fn(weights: Path | None, allow_random: bool, **kw) -> FeatureExtractor``."""
    return _EXTRACTORS.register(name)  # type: ignore[return-value]


def list_extractors(pattern: str = "*") -> list[str]:
    """Names of the registered extractors matching a shell-style ``pattern``."""
    return _EXTRACTORS.names(pattern)


def check_extractor(name: str) -> None:
    """Raise the registry's error (naming the known extractors) for an unknown ``name``."""
    if not name.startswith("timm:"):
        _EXTRACTORS.get(name)


def create_extractor(
    name: str,
    weights: str | Path | None = None,
    device: str | torch.device = "cpu",
    allow_random: bool = False,
    **kwargs: Any,
) -> FeatureExtractor:
    """Build the extractor ``name`` in eval mode on ``device``.

    Parameters
    ----------
    name : str
        A registered name (see :func:`list_extractors`) or ``timm:<model>``.
    weights : path, optional
        A local weights file (safetensors, or a torch state dict read with
        ``weights_only=True``). Required by every extractor except ``builtin``.
    device : str or torch.device
        Where the extractor runs.
    allow_random : bool
        Build a network that needs weights with random ones (tests and benchmarks only).
    """
    extractor: FeatureExtractor
    if name.startswith("timm:"):
        from slidescope.models.extractors.timm_extractor import create_timm_extractor

        extractor = create_timm_extractor(name[5:], weights, allow_random=allow_random)
    else:
        constructor = _EXTRACTORS.get(name)
        path = Path(weights) if weights is not None else None
        extractor = constructor(weights=path, allow_random=allow_random, **kwargs)
    return extractor.to(device).eval()

