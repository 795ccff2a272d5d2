"""The desktop window and its widgets: the only part of ``slidescope.app`` that uses Qt/napari."""

from slidescope.app.ui.singleton_guard import guard_singletons

guard_singletons()
