"""The napari plugin: manifest, reader, sample data and dock, as a napari user meets them."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from slidescope.app.demo import demo_slide
from slidescope.plugins._reader import get_reader

PLUGINS = Path(__file__).resolve().parents[2] / "plugins"


@pytest.fixture(autouse=True)
def small_sample(tmp_path, monkeypatch):
    """The sample slide in a temporary cache, small (it is generated once per test)."""
    monkeypatch.setenv("SLIDESCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SLIDESCOPE_CONFIG", str(tmp_path / "config"))
    monkeypatch.setattr(demo_slide, "SAMPLE_WIDTH", 2048)
    monkeypatch.setattr(demo_slide, "SAMPLE_HEIGHT", 1536)


def test_manifest_is_valid_and_installed():
    import npe2

    manifest = npe2.PluginManifest.from_distribution("slidescope")
    assert manifest.name == "slidescope"
    assert manifest.display_name == "SlideScope"
    patterns = manifest.contributions.readers[0].filename_patterns
    for suffix in ("svs", "tif", "tiff", "ndpi", "mrxs", "scn", "bif", "vms", "dcm", "zarr"):
        assert f"*.{suffix}" in patterns
    assert [s.key for s in manifest.contributions.sample_data] == ["demo_slide"]
    widgets = [w.display_name for w in manifest.contributions.widgets]
    assert widgets == ["Slides", "Analysis", "Annotations"]
    # the window's dock registry and the manifest name the same plugin docks
    from slidescope.app.ui.docks import DOCKS
    from slidescope.plugins._preferences import SLIDE_PATTERNS

    assert [d.plugin_widget for d in DOCKS if d.plugin_widget] == widgets
    assert list(SLIDE_PATTERNS) == list(patterns)
    pm = npe2.PluginManager.instance()
    pm.discover()
    assert "slidescope" in [m.name for m in pm.iter_manifests()]
    # what `npe2 validate` checks: every command's python_name imports to a callable
    for command in manifest.contributions.commands:
        module, _, attribute = command.python_name.partition(":")
        assert callable(getattr(importlib.import_module(module), attribute)), command.id


def test_no_direct_qt_binding_in_the_plugin():
    for file in PLUGINS.glob("*.py"):
        text = file.read_text()
        assert not re.search(r"^\s*(from|import)\s+(PySide6|PyQt5|PyQt6)", text, re.M), file


def test_reader_claims_slides_only(tmp_path):
    assert get_reader(str(tmp_path / "a.svs")) is not None
    assert get_reader([str(tmp_path / "a.ndpi"), str(tmp_path / "b.tiff")]) is not None
    assert get_reader(str(tmp_path / "notes.txt")) is None
    zarr_dir = tmp_path / "image.zarr"
    zarr_dir.mkdir()
    assert get_reader(str(zarr_dir)) is not None


def test_open_with_the_plugin_gives_a_multiscale_layer_in_micrometres(
    make_napari_viewer, aperio_svs
):
    viewer = make_napari_viewer()
    layers = viewer.open(str(aperio_svs), plugin="slidescope")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.multiscale
    assert layer.rgb
    assert layer.name == "cmu_small_region"
    np.testing.assert_allclose(layer.scale, (0.499, 0.499), rtol=1e-3)
    assert str(layer.units[0]) == "micrometer"
    assert layer.metadata["slidescope"]["identity"]["width"] == 2220
    np.testing.assert_array_equal(
        np.asarray(layer.data[0][100:110, 200:230]),
        np.asarray(layer.data[0]._array[100:110, 200:230])[..., :3],
    )


def test_a_broken_file_raises_an_error_naming_it(make_napari_viewer, tmp_path):
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"not a slide at all")
    viewer = make_napari_viewer()
    with pytest.raises(Exception, match=r"broken\.svs"):
        viewer.open(str(bad), plugin="slidescope")
    assert len(viewer.layers) == 0


def test_sample_data_is_made_once_and_reused(make_napari_viewer, tmp_path):
    viewer = make_napari_viewer()
    viewer.open_sample("slidescope", "demo_slide")
    assert len(viewer.layers) == 1
    made = list((tmp_path / "cache" / "samples").glob("*.tiff"))
    assert len(made) == 1
    stamp = made[0].stat().st_mtime_ns
    viewer.open_sample("slidescope", "demo_slide")
    assert len(viewer.layers) == 2
    assert made[0].stat().st_mtime_ns == stamp  # reused, not remade
    assert viewer.layers[0].data[0].shape == (1536, 2048, 3)
    np.testing.assert_allclose(viewer.layers[0].scale, (0.25, 0.25))


def test_dock_widget_opens_slides(make_napari_viewer, aperio_svs, qtbot):
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("slidescope", "Slides")
    widget.session.open_slides([aperio_svs])
    qtbot.waitUntil(lambda: widget.session.current is not None, timeout=20_000)
    assert viewer.layers[0].name == "cmu_small_region"
    assert widget.panels.info.fields["Size"].text() == "2220 x 2967 px (level 0)"
    assert widget.panels.slides.paths() == [str(aperio_svs.resolve())]
    qtbot.waitUntil(lambda: not widget.session.busy, timeout=20_000)
    widget.session.close_slide()
    assert len(viewer.layers) == 0


@pytest.mark.slow
def test_plain_napari_opens_a_slide_and_analyses_it_from_the_dock(
    make_napari_viewer, aperio_svs, qtbot
):
    import torch
    from napari.settings import get_settings
    from qtpy.QtCore import Qt

    torch.set_num_threads(1)
    viewer = make_napari_viewer()
    _dock, widget = viewer.window.add_plugin_dock_widget("slidescope", "Analysis")
    # the plugin made itself napari's reader for slides: no "Choose reader" dialog
    readers = get_settings().plugins.extension2reader
    assert readers["*.svs"] == "slidescope"
    assert readers["*.tiff"] == "slidescope"
    layers = viewer.open(str(aperio_svs), plugin=None)  # napari picks by the preference
    assert layers[0].multiscale
    assert str(layers[0].units[0]) == "micrometer"
    session = widget.analysis.slides
    qtbot.waitUntil(lambda: session.current is not None, timeout=20_000)
    assert session.current.layer is layers[0]  # the reader's layer, adopted
    # viewer.open's default (napari's own reader: one flat image in pixels) is replaced
    # by the multiscale slide in µm
    viewer.open(str(aperio_svs))
    qtbot.waitUntil(
        lambda: session.current is not None and session.current.layer is not layers[0],
        timeout=20_000,
    )
    assert [layer.name for layer in viewer.layers] == ["cmu_small_region"]
    assert viewer.layers[0].multiscale
    assert str(viewer.layers[0].units[0]) == "micrometer"
    qtbot.mouseClick(widget.dock.run_slide_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: widget.analysis.analysis is not None, timeout=120_000)
    qtbot.waitUntil(lambda: not session.busy, timeout=60_000)
    assert "attention" in [layer.name for layer in viewer.layers]
    assert widget.prediction.bars
    # the trust flag: a 20x scan for a model of 40x slides
    assert widget.analysis.analysis.trust.is_outside
    assert "Outside this model's experience" in widget.prediction.trust.text()
    # the Slides dock joins the same session
    _dock2, slides = viewer.window.add_plugin_dock_widget("slidescope", "Slides")
    assert slides.session is session
    session.shutdown()


def test_a_slide_opened_before_the_first_dock_is_adopted(make_napari_viewer, aperio_svs, qtbot):
    """Open first, then Plugins > SlideScope > Analysis: the dock works on that slide."""
    viewer = make_napari_viewer()
    other = viewer.add_image(np.zeros((8, 8), np.uint8), name="not a slide")
    layers = viewer.open(str(aperio_svs), plugin="slidescope")
    viewer.layers.selection.active = other  # the slide is not the selected layer
    _dock, widget = viewer.window.add_plugin_dock_widget("slidescope", "Analysis")
    session = widget.analysis.slides
    qtbot.waitUntil(lambda: session.current is not None, timeout=20_000)
    assert session.current.layer is layers[0]  # adopted, not opened a second time
    assert sorted(layer.name for layer in viewer.layers) == ["cmu_small_region", "not a slide"]
    session.shutdown()
