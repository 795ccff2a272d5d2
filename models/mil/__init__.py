"""MIL models: a registry of networks that turn one bag of instance features into a bag
prediction, per-instance attention and class-aware instance probabilities.

Importing this package registers every built-in model (one module per model):
``mean_pool``, ``max_pool``, ``abmil``, ``abmil_gated``, ``transmil``, ``dsmil``, ``clam_sb``.
"""

from __future__ import annotations

# Imported for their registrations.
from slidescope.models.mil import (  # noqa: F401
    abmil,
    clam,
    dsmil,
    instance_max,
    pooling,
    transmil,
)
from slidescope.models.mil.base import MILModel, MILOutput
from slidescope.models.mil.registry import create_model, list_models, register_model

__all__ = ["MILModel", "MILOutput", "create_model", "list_models", "register_model"]
