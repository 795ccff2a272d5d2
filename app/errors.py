"""The root of the app's user-facing errors.

Every error a user can act on derives from :class:`SlideScopeError` (or, inside the
torch-only ``slidescope.models``, from :class:`slidescope.models.errors.ModelError`). The
CLI prints such errors without a traceback and exits non-zero; the UI shows them as
notifications; batch runs record them per slide and go on. Anything else is a bug.
"""

from __future__ import annotations


class SlideScopeError(Exception):
    """An error whose message tells the user what is wrong and what to do."""


class SettingsError(SlideScopeError, ValueError):
    """A setting (a command's option, a choice in a panel) is unknown or out of range.

    Settings objects raise it when they are made, so a run fails before any work starts.
    """


class MissingMppError(SlideScopeError):
    """A physical size was needed but the slide does not say its microns per pixel."""
