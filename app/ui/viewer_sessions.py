"""One SlideScope session per napari viewer, shared by the window and the plugin's docks.

The desktop window registers its session when it is built; a plugin dock asks for the
viewer's session and builds one only when there is none (plain napari). So Plugins > Slides
inside SlideScope shows the window's slides, never a second, unrelated session.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

# weak: whoever shows the session (window, dock) keeps it; napari checks viewers are freed
_SESSIONS: dict[int, weakref.ref[ViewerSession]] = {}


@dataclass
class ViewerSession:
    """What SlideScope runs in one viewer.

    Attributes
    ----------
    slides : SlideSession
    analysis : AnalysisSession or None
        Made with the first analysis dock.
    window : SlideScopeWindow or None
        The desktop window, when the viewer is one.
    panel : SlidesPanel or None
        The plugin's slides panel (plain napari), shown by the Slides dock.
    """

    slides: Any
    analysis: Any = None
    window: Any = None
    panel: Any = None


def _real(viewer: Any) -> Any:
    # napari hands plugin widgets a proxy of the viewer (a new one per widget): key by the
    # viewer behind it
    return getattr(viewer, "__wrapped__", viewer)


def session_of(viewer: Any) -> ViewerSession | None:
    """The viewer's session, None when SlideScope runs nothing there yet."""
    ref = _SESSIONS.get(id(_real(viewer)))
    return ref() if ref is not None else None


def register(viewer: Any, session: ViewerSession) -> ViewerSession:
    """Record ``session`` as the viewer's (forgotten when the viewer goes)."""
    viewer = _real(viewer)
    key = id(viewer)
    _SESSIONS[key] = weakref.ref(session)
    weakref.finalize(viewer, _SESSIONS.pop, key, None)
    return session


def forget(viewer: Any) -> None:
    _SESSIONS.pop(id(_real(viewer)), None)
