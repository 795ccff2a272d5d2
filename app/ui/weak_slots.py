"""Qt slots that do not keep their owner alive.

A Qt connection holds its slot strongly. A slot bound to a plain Python object that owns
the viewer (the window, a session) would keep the viewer alive for as long as the signal's
widget lives, which is until the event loop deletes it; napari's leak check then fails and
a closed window's memory lingers. These call the method through a weak reference.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any


def weak_slot(method: Callable[..., Any], *bound: Any) -> Callable[..., None]:
    """A slot running ``method(*bound)`` while its object lives; the signal's arguments
    (``checked``, ...) are dropped."""
    ref = weakref.WeakMethod(method)  # type: ignore[arg-type]

    def slot(*_: Any) -> None:
        target = ref()
        if target is not None:
            target(*bound)

    return slot


def weak_handler(method: Callable[..., Any], default: Any = None) -> Callable[..., Any]:
    """A callable passing its arguments to ``method`` and returning its result while the
    object lives, else ``default``."""
    ref = weakref.WeakMethod(method)  # type: ignore[arg-type]

    def handler(*args: Any) -> Any:
        target = ref()
        return default if target is None else target(*args)

    return handler
