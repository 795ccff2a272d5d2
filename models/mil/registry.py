"""The registry of MIL models in the style of timm: a model is a name."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from slidescope.models.errors import ModelError
from slidescope.models.mil.base import MILModel
from slidescope.models.registry import Registry

F = TypeVar("F", bound=Callable[..., MILModel])


class UnknownModelError(ModelError, ValueError):
    """A MIL model name that is not in the registry."""


_MODELS: Registry[Callable[..., MILModel]] = Registry(
    "MIL model", "slidescope.models.mil", UnknownModelError
)


def register_model(name: str) -> Callable[[F], F]:
    """Register a constructor ``fn(in_dim, n_classes, **kwargs) -> MILModel`` as ``name``."""
    return _MODELS.register(name)  # type: ignore[return-value]


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell-style ``pattern``."""
    return _MODELS.names(pattern)


def create_model(name: str, in_dim: int, n_classes: int, **kwargs: Any) -> MILModel:
    """Build the registered model ``name`` for ``in_dim`` features and ``n_classes``.

    Raises
    ------
    UnknownModelError
        For a name that is not registered; the message lists the known ones.
    """
    model = _MODELS.get(name)(in_dim, n_classes, **kwargs)
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    return model
