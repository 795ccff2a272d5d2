"""Keep ``None``, ``True`` and ``False`` alive under PySide6 6.12 on Python 3.11.

PySide6 6.12 loses one reference to the value a Python override of a Qt virtual returns
(``paintEvent`` returns None, ``eventFilter`` a bool) on every call, on Python 3.11. From
3.12 these singletons are immortal and the loss is harmless; on 3.11 their count falls by a
few per repaint until CPython aborts with "Fatal Python error: none_dealloc" — after minutes
of panning in a window, or midway through a test session. Measured here: -2 per repaint of
a bare ``QWidget`` subclass, -4 per napari canvas frame.

:func:`guard_singletons` adds 2**40 references to each, which no session spends (a frame a
microsecond for twelve days), the same thing 3.12's immortality does. The ``gui`` extra also
leaves 6.12.0 out under 3.11 (``pyproject.toml``): a plugin user's napari, which this guard
does not touch, gets a version without the bug (6.11.3: no reference lost, measured).
"""

from __future__ import annotations

import sys

_HEADROOM = 1 << 40
_done = False


def guard_singletons() -> None:
    """Give None, True and False enough references to outlive any PySide6 session (once)."""
    global _done
    if _done or sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return
    import ctypes

    for singleton in (None, True, False):
        # ob_refcnt is the first field of every CPython object (a Py_ssize_t)
        ctypes.c_ssize_t.from_address(id(singleton)).value += _HEADROOM
    _done = True
