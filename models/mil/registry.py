"""The registry of MIL models in the style of timm: a model is a name."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from slidescope.models.mil.base import MILModel, ModelSettingError
from slidescope.models.registry import Registry

F = TypeVar("F", bound=Callable[..., MILModel])


class UnknownModelError(ModelSettingError):
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


def check_model_arguments(name: str, kwargs: dict[str, Any]) -> None:
    """Refuse an unknown model name or argument before any data loads.

    Raises
    ------
    ModelSettingError
        Naming the mistake and listing the valid models or arguments.
    """
    _MODELS.get(name)
    valid = model_arguments(name)
    for key, value in kwargs.items():
        if "dropout" in key and (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not 0.0 <= value < 1.0
        ):
            raise ModelSettingError(f"{name}: {key} must be a rate in [0, 1), got {value!r}")
    unknown = sorted(set(kwargs) - set(valid))
    if unknown:
        raise ModelSettingError(
            f"{name} has no argument(s) {', '.join(unknown)}; its arguments are: "
            f"{', '.join(valid) or '(none)'}"
        )


def model_arguments(name: str) -> list[str]:
    """The keyword arguments the model ``name`` accepts (besides in_dim and n_classes)."""
    constructor = _MODELS.get(name)
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


def _class_of(constructor: Callable[..., MILModel], annotation: Any) -> type[Any] | None:
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
        For an unknown model (:class:`UnknownModelError`, listing the known ones) or
        argument, or an argument out of range.
    """
    check_model_arguments(name, kwargs)
    try:
        model = _MODELS.get(name)(in_dim, n_classes, **kwargs)
    except ModelSettingError:
        raise
    except (TypeError, ValueError) as error:
        raise ModelSettingError(f"{name}: {error}") from error
    model.arch = name
    model.arch_kwargs = dict(kwargs)
    return model
