"""A registry of MIL models in the style of timm: a model is a name."""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from slidescope.models.mil.base import MILModel, ModelSettingError

F = TypeVar("F", bound=Callable[..., MILModel])

_MODELS: dict[str, Callable[..., MILModel]] = {}


def register_model(name: str) -> Callable[[F], F]:
    """Register a constructor ``fn(in_dim, n_classes, **kwargs) -> MILModel`` as ``name``."""

    def decorate(fn: F) -> F:
        if name in _MODELS:
            raise ModelSettingError(f"MIL model {name!r} is registered twice")
        _MODELS[name] = fn
        return fn

    return decorate


def list_models(pattern: str = "*") -> list[str]:
    """Names of the registered models matching a shell-style ``pattern``."""
    _load_builtin_models()
    return sorted(n for n in _MODELS if fnmatch.fnmatch(n, pattern))


def check_model_arguments(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse an unknown model name or argument before any data loads.

    Raises
    ------
    ModelSettingError
        Naming the mistake and listing the valid models or arguments.
    """
    _load_builtin_models()
    if name not in _MODELS:
        raise ModelSettingError(
            f"unknown MIL model {name!r}; known models: {', '.join(sorted(_MODELS))}"
        )
    valid = model_arguments(name)
    unknown = sorted(set(kwargs) - set(valid))
    if unknown and valid is not None:
        raise ModelSettingError(
            f"{name} has no argument(s) {', '.join(unknown)}; its arguments are: "
            f"{', '.join(valid) or '(none)'}"
        )


def model_arguments(name: str) -> list[str]:
    """The keyword arguments the model ``name`` accepts (besides in_dim and n_classes)."""
    _load_builtin_models()
    constructor = _MODELS[name]
    # The registered function usually forwards **kwargs to a class: read the class's.
    target = inspect.signature(constructor).return_annotation
    signature = inspect.signature(constructor)
    if any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        cls = _class_of(constructor, target)
        if cls is not None:
            signature = inspect.signature(cls.__init__)
    skip = {"self", "in_dim", "n_classes", "gated"}
    return [
        p.name
        for p in signature.parameters.values()
        if p.name not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]


def _class_of(constructor: Callable[..., MILModel], annotation: Any) -> type | None:
    if isinstance(annotation, type):
        return annotation
    if isinstance(annotation, str):
        found = constructor.__globals__.get(annotation)
        if isinstance(found, type):
            return found
    return None


def create_model(name: str, in_dim: int, n_classes: int, **kwargs: Any) -> MILModel:
    """Build the registered model ``name`` for ``in_dim`` features and ``n_classes``.

    Raises
    ------
    ModelSettingError
        For an unknown model or argument, or an argument out of range.
    """
    check_model_arguments(name, kwargs)
    try:
        model = _MODELS[name](in_dim, n_classes, **kwargs)
    except ModelSettingError:
        raise
    except (TypeError, ValueError) as error:
        raise ModelSettingError(f"{name}: {error}") from error
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    return model


def _load_builtin_models() -> None:
    # Importing the package registers every built-in model exactly once.
    import slidescope.models.mil  # noqa: F401
