"""A registry in the style of timm: a thing is a name (MIL models, feature extractors).

Each kind keeps one :class:`Registry`; its built-in members register themselves when
their package is imported, which :meth:`Registry.names` and :meth:`Registry.get` do first.
"""

from __future__ import annotations

import fnmatch
import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

from slidescope.models.errors import ModelError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named constructors of one kind.

    Parameters
    ----------
    kind : str
        What a member is, in words ("MIL model", "extractor"), for messages.
    builtins : str
        The package whose import registers the built-in members.
    error : type of ModelError
        Raised for an unknown name, with the known ones listed.
    hint : str
        Added to that message (e.g. other names that work without being registered).
    """

    def __init__(
        self, kind: str, builtins: str, error: type[ModelError], hint: str = ""
    ) -> None:
        self.kind = kind
        self._builtins = builtins
        self._error = error
        self._hint = hint
        self._members: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        """A decorator that registers its function as ``name``."""

        def decorate(member: T) -> T:
            if name in self._members:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._members[name] = member
            return member

        return decorate

    def names(self, pattern: str = "*") -> list[str]:
        """The registered names matching a shell-style ``pattern``, sorted."""
        self._load_builtins()
        return sorted(n for n in self._members if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> T:
        """The member registered as ``name``; the registry's error names the known ones."""
        self._load_builtins()
        try:
            return self._members[name]
        except KeyError:
            known = ", ".join(sorted(self._members))
            raise self._error(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {known}{self._hint}"
            ) from None

    def _load_builtins(self) -> None:
        # importing the package registers every built-in member exactly once
        importlib.import_module(self._builtins)
