"""What the window-opening commands (``gui``, ``open``, ``demo``) check before starting Qt."""

from __future__ import annotations

import importlib.util
import os
import sys

from slidescope.app.errors import SlideScopeError


class WindowUnavailableError(SlideScopeError):
    """The desktop window cannot start here (no screen, or no Qt installed)."""


def require_window() -> None:
    """Raise :class:`WindowUnavailableError` with what to do when no window can open.

    Checked before importing Qt: without a screen, Qt aborts the whole process with a
    page of xcb errors instead of a message a person can act on.
    """
    try:
        napari = importlib.util.find_spec("napari")
    except (ImportError, ValueError):  # a broken or blocked install counts as none
        napari = None
    if napari is None:
        raise WindowUnavailableError(
            "the desktop window needs napari and Qt, which this installation does not have; "
            "install them with: pip install 'slidescope[gui]'"
        )
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    headless_ok = platform.startswith(("offscreen", "minimal", "vnc", "eglfs", "wayland"))
    if (
        sys.platform.startswith("linux")
        and not headless_ok
        and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    ):
        raise WindowUnavailableError(
            "no display to open the window on (DISPLAY is not set); run "
            "'slidescope --self-check' to check the installation headless, or start the "
            "window on a virtual screen with 'xvfb-run slidescope'"
        )
