"""Fixtures for the window tests (helpers in ui_slides.py)."""

from __future__ import annotations

import numpy as np
import pytest
from ui_slides import SlideFiles, synthetic_levels


@pytest.fixture(scope="session")
def small_levels() -> list[np.ndarray]:
    """A 2048 x 1536 slide with 4 levels (downsamples 1, 2, 4, 8)."""
    return synthetic_levels(2048, 1536, 4)


@pytest.fixture
def slide_files() -> SlideFiles:
    return SlideFiles()


@pytest.fixture(autouse=True)
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Recent files and the demo cache go to a temporary folder, never the user's home."""
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SLIDESCOPE_CONFIG", str(base / "config"))
    monkeypatch.setenv("SLIDESCOPE_CACHE", str(base / "cache"))


@pytest.fixture(scope="session")
def demo_slide(tmp_path_factory: pytest.TempPathFactory):
    """A small demo slide (4096 x 4096, 0.25 µm/px, 4 levels), made once per session."""
    from slidescope.app.jobs import run_job
    from slidescope.app.ui.demo_slide import ensure_demo_slide

    folder = tmp_path_factory.getbasetemp() / "cache" / "samples"
    return run_job(ensure_demo_slide(folder, 4096, 4096, 0))
