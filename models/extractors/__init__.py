"""Patch feature extractors: a registry of names (``create_extractor``, ``list_extractors``).

Importing the package registers every built-in extractor.
"""

from __future__ import annotations

from slidescope.models.extractors import builtin, resnet, vit  # noqa: F401  (registration)
from slidescope.models.extractors.base import (
    ExtractorError,
    ExtractorSpec,
    ExtractorWeightsError,
    FeatureExtractor,
)
from slidescope.models.extractors.registry import (
    check_extractor,
    create_extractor,
    list_extractors,
    register_extractor,
)

__all__ = [
    "ExtractorError",
    "ExtractorSpec",
    "ExtractorWeightsError",
    "FeatureExtractor",
    "check_extractor",
    "create_extractor",
    "list_extractors",
    "register_extractor",
]
