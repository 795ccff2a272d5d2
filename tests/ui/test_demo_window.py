"""``slidescope demo``: slide made, shown, analysed; a second demo reuses everything."""

from __future__ import annotations

import pytest
from slidescope.app.cli import build_parser
from slidescope.app.project.project import Project
from slidescope.app.ui.demo_window import start_demo
from slidescope.app.ui.main_window import SlideScopeWindow


def test_demo_command_is_listed():
    args = build_parser().parse_args(["demo", "--out", "somewhere"])
    assert args.out == "somewhere"
    assert args.seed == 7


@pytest.mark.slow
def test_demo_shows_heatmaps_then_reuses_them(
    make_napari_viewer, tmp_path, qtbot, one_torch_thread
):
    for _ in range(2):
        window = SlideScopeWindow(make_napari_viewer(show=True))
        start_demo(window, tmp_path / "demo", seed=0, size=(4096, 4096))
        qtbot.waitUntil(lambda w=window: w.analysis.analysis is not None, timeout=180_000)
        qtbot.waitUntil(lambda w=window: not w.session.busy, timeout=60_000)
        names = [layer.name for layer in window.viewer.layers]
        assert names == ["demo-slide-s0-4096x4096", "attention", "hard_attention", "Annotations"]
        assert window.prediction.bars
        # the slide list shows the slide's picture, the first time too (as for any slide added)
        project = window.session.project
        assert project.thumbnail_path(project.slides[0].slide_id).is_file()
        window.session.shutdown()
        del window
    slides = list((tmp_path / "demo" / "slides").glob("*.tiff"))
    assert len(slides) == 1  # made once
    project = Project.open(tmp_path / "demo" / "demo-project")
    assert project.slides[0].analyses["demo_model"]["state"] == "done"
