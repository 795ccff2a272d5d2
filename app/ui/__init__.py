"""The desktop window and its widgets: the only part of ``slidescope.app`` that uses Qt/napari.

Importing this package changes nothing process-wide: the workaround for PySide6's refcount
bug (:mod:`slidescope.app.ui.singleton_guard`) is applied by the desktop app when it starts
(:func:`slidescope.app.ui.app.run_window`, the demo), not by a plugin loaded into someone
else's napari.
"""
