"""A registry of MIL models in the style of timm: a model is a name."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any, TypeVar

from slidescope.models.mil.base import MILModel

F = TypeVar("F", bound=Callable[..., MILModel])

_MODELS: dict[str, Callable[..., MILModel]] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Register a constructor ``fn(in_dim, n_classes, **kwargs) -> MILModel`` as ``name``."""

    def decorate(fn: F) -> F:
        if name in _MODELS:
            raise ValueError(f"MIL model {name!r} is registered twice")
        _MODELS[name] = fn
        return fn

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell-style ``pattern``."""
    _load_builtin_models()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def create_model(name: str, in_dim: int, n_classes: int, **kwargs: Any) -> MILModel:
    """Build the registered model ``name`` for ``in_dim`` features and ``n_classes``."""
    _load_builtin_models()
    try:
        constructor = _MODELS[name]
    except KeyError:
        raise ValueError(
            f"unknown MIL model {name!r}; known models: {', '.join(sorted(_MODELS))}"
        ) from None
    model = constructor(in_dim, n_classes, **kwargs)
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    return model


def _load_builtin_models() -> None:
    # Importing the package registers every built-in model exactly once.
    import slidescope.models.mil  # noqa: F401
