"""MIL models: a registry of networks that turn one bag of instance features into a bag
prediction, per-instance attention and class-aware instance probabilities.

Importing this package registers every built-in model (one module per model):
``mean_pool``, ``max_pool``, ``abmil``, ``abmil_gated``, ``transmil``, ``dsmil``,
``clam_sb``, ``instance_max``, ``concept_presence``.

The standard MIL assumption
---------------------------
Standard MIL says a bag is positive if and only if it holds at least one positive
instance: a positive instance cannot be cancelled by other instances, and how many
instances of a kind a bag holds does not matter. Only models in
:data:`STANDARD_MIL_MODELS` keep it by construction:

* ``instance_max`` (mi-Net): per-instance evidence scores, max-pooled. Adding instances
  can only raise a bag's positive score; repeating instances changes nothing. It passes
  the algorithmic unit tests of Raff & Holt (NeurIPS 2023; see
  ``slidescope mil-tests``) on the poison test, but it cannot require two concepts
  together (threshold test) and fails the false-frequency test.
* ``concept_presence``: per-instance concept scores, max-pooled into concept presences,
  combined by a network with non-negative weights. Monotone in instances and blind to
  repetition like ``instance_max``, and able to require concept A *and* concept B: it
  passes all three of Raff & Holt's tests (poison, threshold, false frequency).

Every other model pools with a softmax attention or a learnt linear read-out over pooled
features, so an instance can lower the bag's positive score: ABMIL, gated ABMIL,
TransMIL, DSMIL, CLAM-SB and the mean / max pooling baselines can learn "this
negative-looking instance is present, so the bag is negative" or count instances, and
they fail the presence and false-frequency tests when the training data offers such a
shortcut. They are the right choice when the label is NOT a presence label (subtypes,
grades, survival, collective evidence); pick ``instance_max`` when a bag is positive
because one region is (a metastasis, a malignant cell).
"""

from __future__ import annotations

# Imported for their registrations.
from slidescope.models.mil import (  # noqa: F401
    abmil,
    clam,
    concept_presence,
    dsmil,
    instance_max,
    pooling,
    transmil,
)
from slidescope.models.mil.base import MILModel, MILOutput
from slidescope.models.mil.registry import create_model, list_models, register_model

#: models whose bag score respects the standard MIL assumption by construction
STANDARD_MIL_MODELS: frozenset[str] = frozenset({"instance_max", "concept_presence"})

__all__ = [
    "STANDARD_MIL_MODELS",
    "MILModel",
    "MILOutput",
    "create_model",
    "list_models",
    "register_model",
]
