"""A registry of patch feature extractors in the style of timm: an extractor is a name.

``create_extractor("builtin")``, ``create_extractor("resnet50-trunc", weights="r50.pth")``,
``create_extractor("uni", weights="uni.safetensors")``, ``create_extractor("timm:<name>",
weights=...)`` when timm is installed. No weight is ever downloaded.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from slidescope.models.extractors.base import ExtractorError, FeatureExtractor

F = TypeVar("F", bound=Callable[..., FeatureExtractor])

_EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {}


def register_extractor(name: str) -> Callable[[F], F]:
    """Register ``fn(weights: Path | None, allow_random: bool, **kw) -> FeatureExtractor``."""

    def decorate(fn: F) -> F:
        if name in _EXTRACTORS:
            raise ValueError(f"extractor {name!r} is registered twice")
        _EXTRACTORS[name] = fn
        return fn

    return decorate


def list_extractors(pattern: str = "*") -> list[str]:
    """Names of the registered extractors matching a shell-style ``pattern``."""
    _load_builtin_extractors()
    return sorted(n for n in _EXTRACTORS if fnmatch.fnmatch(n, pattern))


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
    _load_builtin_extractors()
    if name.startswith("timm:"):
        from slidescope.models.extractors.timm_extractor import create_timm_extractor

        extractor = create_timm_extractor(name[5:], weights, allow_random=allow_random)
    else:
        try:
            constructor = _EXTRACTORS[name]
        except KeyError:
            raise ExtractorError(
                f"unknown extractor {name!r}; known extractors: {', '.join(sorted(_EXTRACTORS))}"
                " (or timm:<name> when timm is installed)"
            ) from None
        path = Path(weights) if weights is not None else None
        extractor = constructor(weights=path, allow_random=allow_random, **kwargs)
    return extractor.to(device).eval()


def _load_builtin_extractors() -> None:
    # Importing the package registers every built-in extractor exactly once.
    import slidescope.models.extractors  # noqa: F401
