"""Layer changes batched into one update of napari's scene graph (napari_access)."""

from __future__ import annotations

import gc

import numpy as np
import pytest
from slidescope.app.ui.napari_access import layers_changed_together


@pytest.fixture
def collections(monkeypatch) -> list[int]:
    """Counts the full collections napari's canvas runs (one per scene-graph clean-up)."""
    calls: list[int] = []
    collect = gc.collect

    def counting(*args: int) -> int:
        calls.append(1)
        return collect(*args)

    monkeypatch.setattr(gc, "collect", counting)
    return calls


def test_removals_in_a_block_cost_one_collection(make_napari_viewer, collections) -> None:
    viewer = make_napari_viewer()
    layers = [viewer.add_image(np.zeros((32, 32)), name=f"l{i}") for i in range(4)]
    collections.clear()
    viewer.layers.remove(layers[0])
    assert len(collections) == 1  # napari's own cost, outside a batch
    collections.clear()
    with layers_changed_together(viewer):
        viewer.layers.remove(layers[1])
        with layers_changed_together(viewer):  # nested: batched with the outermost
            viewer.layers.remove(layers[2])
        viewer.layers.remove(layers[3])
        assert collections == []
    assert len(collections) == 1
    assert len(viewer.layers) == 0
