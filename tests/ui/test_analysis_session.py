"""The analysis in the window: run with the demo checkpoint, heatmaps, read-outs, export."""

from __future__ import annotations

import json

import numpy as np
import pytest
from qtpy.QtCore import Qt
from slidescope.app.display.placement import grid_placement
from slidescope.app.project.project import Project
from slidescope.app.ui.main_window import SlideScopeWindow
from test_main_window import open_and_wait
from ui_slides import save_shot

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def make_window(window_factory):
    return window_factory


def analyse(window: SlideScopeWindow, qtbot) -> None:
    qtbot.mouseClick(window.analysis_dock.run_slide_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.analysis.analysis is not None, timeout=120_000)
    qtbot.waitUntil(lambda: not window.session.busy, timeout=60_000)


@pytest.mark.slow
def test_analyse_show_read_and_export(make_window, demo_slide, qtbot, tmp_path):
    window = make_window()
    assert window.analysis.checkpoint.name == "demo_model.safetensors"
    open_and_wait(window, qtbot, demo_slide)
    analyse(window, qtbot)
    analysis = window.analysis.analysis
    assert analysis.n_patches > 0
    names = [layer.name for layer in window.viewer.layers]
    assert names == ["demo-slide-s0-4096x4096", "attention", "Annotations"]

    # the heatmap sits on the patch grid, in the slide's µm world
    heat = window.viewer.layers["attention"]
    grid = window.analysis.grids["attention"]
    expected = grid_placement(window.session.current.data.space, grid.origin, grid.cell)
    np.testing.assert_allclose(heat.scale, expected.scale)
    np.testing.assert_allclose(heat.translate, expected.translate)

    # prediction panel and gallery
    assert set(window.prediction.bars) == {"lesion", "normal"}
    assert "Prediction:" in window.prediction.headline.text()
    qtbot.waitUntil(lambda: "top attention" in window.gallery.lists, timeout=30_000)
    assert window.gallery.lists["top attention"].count() == min(8, analysis.n_patches)

    # one kind at a time by default: another kind replaces attention
    window.analysis_dock.kind_boxes["hard"].setChecked(True)
    assert [layer.name for layer in window.viewer.layers][1:] == ["hard_attention", "Annotations"]
    assert window.legend_titles() == ["Hard-instance attention · min-max"]
    # every kind with "overlay several", then one class only; the predicted one is chosen
    window.analysis_dock.several.setChecked(True)
    assert window.analysis_dock.class_name() == analysis.predicted_class
    window.analysis_dock.class_combo.setCurrentIndex(
        window.analysis_dock.class_combo.findData(None)
    )
    for kind in ("attention", "prob", "masked", "hard"):
        window.analysis_dock.kind_boxes[kind].setChecked(True)
    names = [layer.name for layer in window.viewer.layers][1:]
    assert names == [
        "attention", "prob_lesion", "prob_normal", "masked", "hard_attention", "Annotations",
    ]  # fmt: skip
    window.analysis_dock.class_combo.setCurrentIndex(
        window.analysis_dock.class_combo.findData("lesion")
    )
    assert "prob_normal" not in [layer.name for layer in window.viewer.layers]
    # every painted heatmap has its colour key, the top layer's first
    assert window.legend_titles() == [
        "Hard-instance attention · min-max", "Masked salient set", "p(lesion) · min-max",
        "Attention · min-max",
    ]  # fmt: skip
    # dragged in the layer list, the keys follow
    layers = window.viewer.layers
    layers.move(layers.index(layers["attention"]), layers.index(layers["hard_attention"]) + 1)
    assert window.legend_titles()[0] == "Attention · min-max"
    window.analysis_dock.opacity.setValue(60)  # a display change puts them back in kind order
    assert window.legend_titles()[-1] == "Attention · min-max"
    # attention and hard-instance attention never share a colormap
    assert (
        window.viewer.layers["attention"].colormap.name
        != window.viewer.layers["hard_attention"].colormap.name
    )

    def painted(layer) -> int:
        low, high = layer.contrast_limits
        shares = np.clip((layer.data - low) / (high - low), 0, 1).ravel()
        return int((layer.colormap.map(shares)[:, 3] > 0).sum())

    # low values are transparent (an alpha ramp): not every patch is painted
    layer = window.viewer.layers["attention"]
    opaque = painted(layer)
    assert 0 < opaque < analysis.n_patches
    # display changes update the same layer in place and keep the user's hidden layer hidden
    window.viewer.layers["hard_attention"].visible = False
    window.analysis_dock.threshold_on.setChecked(True)
    window.analysis_dock.threshold.setValue(0.8)
    window.analysis_dock.opacity.setValue(70)
    assert 0 < painted(layer) < opaque
    before = np.array(layer.data, copy=True)
    window.analysis_dock.normalisation.setCurrentIndex(
        window.analysis_dock.normalisation.findData("rank")
    )
    assert window.viewer.layers["attention"] is layer
    assert not np.array_equal(layer.data, before)  # normalisation replaces the data only
    assert not window.viewer.layers["hard_attention"].visible
    assert layer.opacity == pytest.approx(0.7)
    # a hidden layer has no key; a key names the normalisation it shows
    assert window.legend_titles() == [
        "Masked salient set", "p(lesion) · rank", "Attention · rank",
    ]  # fmt: skip
    window.analysis_dock.normalisation.setCurrentIndex(
        window.analysis_dock.normalisation.findData("minmax")
    )
    save_shot(window.viewer.screenshot(canvas_only=False, flash=False), "window-heatmaps", tmp_path)

    # hover read-out of the most attended patch
    top = int(np.argmax(analysis.attention))
    x, y = analysis.coords[top] + analysis.patch_size_level0 // 2
    text = window.analysis.readout(window.session.current.data.space.to_world(x, y))
    assert f"attention {analysis.attention[top]:.4g}" in text
    assert "p(lesion)" in text
    assert window.analysis.readout((-10.0, -10.0)) == ""

    # the read-out at the cursor, from a grid lookup
    canvas = window.overlays.canvas
    shown = window.analysis.hover(
        window.session.current.data.space.to_world(x, y), (canvas.width() / 2, 40)
    )
    assert f"attention {analysis.attention[top]:.3g}" in shown
    assert window.overlays.hover.isVisible()
    assert window.overlays.hover.text() == shown

    # a gallery click goes to the patch and outlines it
    item = window.gallery.lists["top attention"].item(0)
    window.gallery._clicked(item)
    cy, cx = window.viewer.scene.camera.center[-2:]
    assert window.session.current.data.space.pixel_at((cy, cx)) == (int(x), int(y))
    target = window.viewer.layers["target patch"]
    corner = np.asarray(target.data[0]).min(axis=0)  # (y, x) level-0
    np.testing.assert_allclose(corner, analysis.coords[top][::-1])

    # F3 steps through separate hotspots of the heatmap shown
    first = window.analysis.next_hotspot(1)
    second = window.analysis.next_hotspot(1)
    assert first is not None
    assert second is not None
    assert first != second
    assert window.analysis.next_hotspot(-1) == first

    # export writes what the CLI writes
    window.analysis.export(tmp_path / "out")
    marker = (
        tmp_path / "out" / analysis.identity.slide_id / f"{analysis.identity.slide_id}.done.json"
    )
    qtbot.waitUntil(marker.exists, timeout=60_000)
    record = json.loads(marker.read_text())
    assert record["display"]["threshold"] == pytest.approx(0.8)
    assert any(name.endswith(".scores.csv") for name in record["files"])


@pytest.mark.slow
def test_project_analysis_records_states_and_goes_on_after_a_failure(
    make_window, demo_slide, qtbot, tmp_path
):
    project = Project.create(tmp_path / "proj")
    project.add_slide(demo_slide)
    broken = tmp_path / "broken.svs"
    broken.write_bytes(b"nothing")
    project.add_slide(broken)
    project.save()
    window = make_window()
    window.open_project(tmp_path / "proj")
    qtbot.waitUntil(lambda: not window.session.busy, timeout=60_000)
    window.analysis.run_project()
    qtbot.waitUntil(lambda: not window.session.busy, timeout=120_000)
    reopened = Project.open(tmp_path / "proj")
    key = window.analysis.key
    assert reopened.slide(demo_slide.stem).analyses[key]["state"] == "done"
    assert reopened.slide("broken").analyses[key]["state"] == "failed"
    assert "broken.svs" in reopened.slide("broken").analyses[key]["error"]
    # showing the analysed slide shows its (cached) heatmaps at once
    window.open_slides([demo_slide])
    qtbot.waitUntil(lambda: window.analysis.analysis is not None, timeout=60_000)
    assert "attention" in [layer.name for layer in window.viewer.layers]
