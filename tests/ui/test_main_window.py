"""The desktop window: slides on screen pixel-exact, errors shown, switching frees memory."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
from napari.utils.notifications import notification_manager
from qtpy.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from qtpy.QtGui import QAction, QDropEvent, QKeySequence
from qtpy.QtWidgets import QWidget
from slidescope.app.ui.docks import DOCKS
from slidescope.app.ui.main_window import SlideScopeWindow
from slidescope.app.ui.napari_access import layer_docks, welcome_widget
from ui_slides import SlideFiles, save_shot, synthetic_levels


@pytest.fixture
def make_window(window_factory, slide_files: SlideFiles):
    return functools.partial(window_factory, open_slide=slide_files, cache_bytes=64 * 1024**2)


def open_and_wait(win: SlideScopeWindow, qtbot, path: Path) -> None:
    win.open_slides([path])
    qtbot.waitUntil(
        lambda: win.session.current is not None and win.session.current.path == path.resolve(),
        timeout=20_000,
    )


def look_at(
    win: SlideScopeWindow, qtbot, level: int, top_left: tuple[int, int], stretch: float = 1.0
) -> np.ndarray:
    """Look at ``level`` with ``stretch`` of its pixels per screen pixel, the centre of the
    canvas's top-left pixel on pixel ``top_left`` (x, y); return the canvas' screenshot.

    Background work is let finish first (its progress line leaving resizes the canvas), and
    a view whose canvas changed size meanwhile is taken again.
    """
    qtbot.waitUntil(lambda: not win.session.busy, timeout=30_000)
    for _ in range(3):
        size = tuple(win.viewer.canvas.size)
        shot = _look_at_once(win, qtbot, level, top_left, stretch)
        if shot.shape[:2] == size == tuple(win.viewer.canvas.size):
            return shot
    raise AssertionError("the canvas kept changing size")


def _look_at_once(
    win: SlideScopeWindow, qtbot, level: int, top_left: tuple[int, int], stretch: float = 1.0
) -> np.ndarray:
    """Look at ``level`` with ``stretch`` of its pixels per screen pixel, the centre of the
    canvas's top-left pixel on pixel ``top_left`` (x, y); return the canvas' screenshot.

    napari shows level k only when its pixels are no bigger than screen pixels and the view
    is strictly wider than the canvas, so a middle level needs ``stretch`` a little above 1.
    """
    viewer = win.viewer
    shown = win.session.current
    d = shown.slide.downsamples[level]
    mpp_x, mpp_y = shown.slide.mpp
    h, w = viewer.canvas.size
    x, y = top_left
    viewer.canvas.overlays.scale_bar.visible = False
    # world = continuous level-0 coordinates x mpp at every level (napari centres a level-k
    # pixel on its level-0 footprint), so screen row r's centre lands on level row
    # y + (r + 0.5) * stretch
    viewer.scene.camera.zoom = 1.0 / (d * mpp_x * stretch)
    viewer.scene.camera.center = (
        (y + h / 2 * stretch) * d * mpp_y,
        (x + w / 2 * stretch) * d * mpp_x,
    )
    layer = shown.layer
    lw, lh = shown.slide.level_dimensions[level]
    want_lo = np.array([y, x])
    want_hi = np.minimum([y + int(h * stretch) - 1, x + int(w * stretch) - 1], [lh - 1, lw - 1])

    def sliced() -> bool:  # the level, and a slice holding the whole view, have arrived
        if tuple(viewer.canvas.size) != (h, w):
            return True  # the window re-laid itself out: `look_at` takes the view again
        corners = np.asarray(layer.corner_pixels)[:, -2:]
        return bool(
            layer.data_level == level
            and (corners[0] <= want_lo).all()
            and (corners[1] >= want_hi).all()
        )

    qtbot.waitUntil(sliced, timeout=10_000)
    return settled_screenshot(viewer, qtbot)


def settled_screenshot(viewer, qtbot) -> np.ndarray:
    """The canvas once two screenshots in a row agree (tiles arrived, nothing pending)."""
    shots: list[np.ndarray] = []

    def settled() -> bool:
        shots.append(viewer.screenshot(canvas_only=True, flash=False)[..., :3])
        return len(shots) > 1 and np.array_equal(shots[-2], shots[-1])

    qtbot.waitUntil(settled, timeout=10_000)
    return shots[-1]


def expected_view(
    slide, level: int, top_left: tuple[int, int], shape: tuple[int, int], stretch: float
) -> tuple[np.ndarray, np.ndarray]:
    """What nearest-neighbour drawing of ``look_at``'s view must show, from ``read_region``,
    and a mask of the screen pixels that sample clearly inside one slide pixel."""
    h, w = shape
    x, y = top_left
    rows = y + (np.arange(h) + 0.5) * stretch  # nearest pixel = floor
    cols = x + (np.arange(w) + 0.5) * stretch
    span = (int(np.ceil(cols[-1] - x)) + 1, int(np.ceil(rows[-1] - y)) + 1)
    d = round(slide.downsamples[level])
    region = slide.read_region((x * d, y * d), level, span)
    ri, ci = np.floor(rows).astype(int) - y, np.floor(cols).astype(int) - x
    clear_r = np.abs(rows - np.round(rows)) > 0.05
    clear_c = np.abs(cols - np.round(cols)) > 0.05
    if stretch == 1.0:
        clear_r[:], clear_c[:] = True, True
    return region[ri][:, ci], clear_r[:, None] & clear_c[None, :]


def agreement(shot: np.ndarray, expected: np.ndarray, where: np.ndarray | None = None) -> float:
    """Share of screen pixels (of ``where``) whose colour is within 2 of the slide's."""
    h, w = expected.shape[:2]
    close = np.abs(shot[:h, :w].astype(int) - expected.astype(int)).max(axis=-1) <= 2
    return float(close[where].mean() if where is not None else close.mean())


def tissue_spot(slide, level: int, size: tuple[int, int]) -> tuple[int, int]:
    """Top-left (x, y) in ``level`` pixels of a ``size`` window centred on tissue."""
    from scipy.ndimage import uniform_filter

    thumb = slide.thumbnail(256).astype(float)
    # pinkish texture (tissue), not the black pen dots on the glass
    tissue = (thumb[..., 1] < 200) & (thumb[..., 0] > 120)
    box = max(3, int(size[0] * slide.downsamples[level] / slide.dimensions[0] * 256))
    r, c = np.unravel_index(np.argmax(uniform_filter(tissue.astype(float), box)), tissue.shape)
    w0, h0 = slide.dimensions
    d = slide.downsamples[level]
    x = int(c / thumb.shape[1] * w0 / d) - size[0] // 2
    y = int(r / thumb.shape[0] * h0 / d) - size[1] // 2
    lw, lh = slide.level_dimensions[level]
    return (min(max(x, 0), lw - size[0]), min(max(y, 0), lh - size[1]))


@pytest.mark.slow
@pytest.mark.parametrize(("level", "stretch"), [(0, 1.0), (2, 1.01)])
def test_demo_slide_on_screen_is_read_region(
    make_window, demo_slide, qtbot, level, stretch, tmp_path
):
    window = make_window()
    open_and_wait(window, qtbot, demo_slide)
    slide = window.session.current.slide
    if level == 0:
        save_shot(
            window.viewer.screenshot(canvas_only=False, flash=False), "window-demo-slide", tmp_path
        )
    h, w = window.viewer.canvas.size
    top_left = tissue_spot(slide, level, (int(w * stretch) + 2, int(h * stretch) + 2))
    shot = look_at(window, qtbot, level, top_left, stretch)
    expected, clear = expected_view(slide, level, top_left, (h, w), stretch)
    save_shot(shot, f"demo-level{level}-screen", tmp_path)
    save_shot(expected, f"demo-level{level}-read-region", tmp_path)
    assert expected.std() > 10  # tissue, not bare glass
    exact = agreement(shot, expected, clear)
    assert exact > 0.999
    # a shift of one pixel would show
    assert agreement(shot[:, 1:], expected[:, :-1], clear[:, 1:]) < exact - 0.02


def test_synthetic_slide_level0_on_screen(make_window, slide_files, small_levels, tmp_path, qtbot):
    window = make_window()
    path = slide_files.add(tmp_path / "synthetic.tif", small_levels)
    open_and_wait(window, qtbot, path)
    top_left = (700, 500)
    shot = look_at(window, qtbot, 0, top_left)
    h, w = min(shot.shape[0], 1536 - 500), min(shot.shape[1], 2048 - 700)
    expected = window.session.current.slide.read_region(top_left, 0, (w, h))
    assert agreement(shot, expected) > 0.999
    # a one-pixel shift would be caught (level-0 blocks are 4 px: 75 % would still agree)
    assert agreement(shot[:, 1:], expected[:, :-1]) < 0.9


def test_window_has_name_menus_docks_and_scale_bar(make_window):
    window = make_window()
    assert window.viewer.title == "SlideScope"
    assert not window.qt_window.windowIcon().isNull()
    texts = [a.text() for a in window.viewer.window.file_menu.actions()]
    for wanted in ("Open Slide...", "Open Project...", "New Project...", "Recent Files",
                   "Import Annotations...", "Export Annotations..."):  # fmt: skip
        assert wanted in texts
    assert set(window.docks) == {
        "slides", "overview", "info", "analysis", "prediction", "patches", "annotations", "train",
    }  # fmt: skip
    # no scale bar on the empty canvas (a bare number there): it comes with a slide
    assert not window.viewer.canvas.overlays.scale_bar.visible
    # every dock can be reopened from the Window menu
    window_menu = [a.text() for a in window.viewer.window.window_menu.actions()]
    for spec in DOCKS:
        assert spec.title in window_menu
    # progress lives in the status bar, not behind a dock's tab
    assert window.panels.jobs.parentWidget() is not None
    assert window.qt_window.statusBar().isAncestorOf(window.panels.jobs)
    # Ctrl+O and Ctrl+Shift+O each open one thing: SlideScope's
    for key, ours in (("Ctrl+O", "Open Slide..."), ("Ctrl+Shift+O", "Open Project...")):
        owners = [
            a.text()
            for a in window.qt_window.findChildren(QAction)
            if any(k.toString() == QKeySequence(key).toString() for k in a.shortcuts())
        ]
        assert owners == [ours]
    # napari's welcome screen is replaced by SlideScope's start page
    assert window.start_page.isVisible()
    assert not welcome_widget(window.viewer).isVisible()


@pytest.mark.parametrize("screen", [(1600, 1000)])
def test_layout_fits_the_screen_and_leaves_the_canvas_two_thirds(make_window, screen, qtbot):
    window = make_window(size=(2400, 1600))  # larger than the screen: made to fit
    qtbot.waitUntil(lambda: window.qt_window.width() <= screen[0], timeout=5_000)
    free = window.qt_window.screen().availableGeometry()
    assert window.qt_window.width() <= free.width()
    assert window.qt_window.height() <= free.height()
    window.qt_window.resize(*screen)
    window._lay_out()
    qtbot.waitUntil(lambda: window.viewer.canvas.size[1] >= 2 * screen[0] / 3, timeout=5_000)
    for dock in layer_docks(window.viewer):  # napari's layer docks start collapsed
        assert not dock.isVisible()
    left = [window.docks[k] for k in ("slides", "overview")]
    right = [window.docks[k] for k in ("prediction", "analysis")]
    centre = window.qt_window.width() / 2
    # the slide list has room for six slides with their thumbnails
    slide_list = window.panels.slides.list
    assert slide_list.viewport().height() >= 6 * (slide_list.iconSize().height() + 4)
    assert all(d.geometry().center().x() < centre for d in left)
    assert all(d.geometry().center().x() > centre for d in right)


def test_magnification_presets_and_one_cursor_read_out(
    make_window, slide_files, small_levels, tmp_path, qtbot
):
    window = make_window()
    first = slide_files.add(tmp_path / "a.tif", small_levels, mpp=(0.25, 0.25))
    open_and_wait(window, qtbot, first)
    window.actions["magnification_20"].trigger()
    assert window.viewer.scene.camera.zoom == pytest.approx(2.0)
    assert window.magnification_label.text().startswith("20×")
    assert "scan 40× (0.25 µm/px)" in window.magnification_label.text()
    assert window.actions["magnification_20"].shortcut().toString() == "Alt+4"
    window.position_label.setText(window.position_text((10.0, 10.0)))
    assert window.position_label.text().startswith("x 40  y 40 px")
    # napari's own (y, x) read-out is gone: one read-out only
    napari_coordinates = window.qt_window.statusBar().findChild(QWidget, "coordinates status")
    assert napari_coordinates is None or napari_coordinates.width() == 0
    # a new slide starts with an empty read-out, not the last slide's coordinates
    second = slide_files.add(tmp_path / "b.tif", synthetic_levels(512, 384, 2, seed=3))
    open_and_wait(window, qtbot, second)
    assert window.position_label.text() == ""


def test_scale_bar_in_micrometres_and_status_position(
    make_window, slide_files, small_levels, tmp_path, qtbot
):
    window = make_window()
    path = slide_files.add(tmp_path / "s.tif", small_levels, mpp=(0.5, 0.5))
    open_and_wait(window, qtbot, path)
    assert window.viewer.canvas.overlays.scale_bar.visible
    layer = window.session.current.layer
    assert str(layer.units[0]) == "micrometer"
    np.testing.assert_allclose(layer.scale, (0.5, 0.5))
    # world (y, x) in µm -> level-0 pixel (x, y)
    assert window.position_text((100.2, 50.7)) == "x 101  y 200 px  |  50.5, 100.0 µm"
    assert window.position_text((-1.0, 5.0)) == ""  # off the slide
    window.session.close_slide()
    assert not window.viewer.canvas.overlays.scale_bar.visible


def test_minimap_shows_view_and_click_moves_there(
    make_window, slide_files, small_levels, tmp_path, qtbot
):
    window = make_window()
    path = slide_files.add(tmp_path / "s.tif", small_levels)
    open_and_wait(window, qtbot, path)
    minimap = window.panels.minimap
    assert minimap.view_rect is not None
    x0, _, x1, _ = minimap.view_rect
    # after reset_view the whole slide is in view
    assert x0 <= 150
    assert x1 >= 2048 - 150
    target = minimap._target()
    click = QPointF(target.left() + target.width() * 0.25, target.top() + target.height() * 0.75)
    qtbot.mouseClick(minimap, Qt.MouseButton.LeftButton, pos=click.toPoint())
    cy, cx = window.viewer.scene.camera.center[-2:]
    assert cx / 0.5 == pytest.approx(2048 * 0.25, abs=2048 / target.width() * 2)
    assert cy / 0.5 == pytest.approx(1536 * 0.75, abs=1536 / target.height() * 2)


def test_corrupt_file_is_a_notification_and_the_window_goes_on(
    make_window, slide_files, small_levels, tmp_path, qtbot
):
    window = make_window()
    good = slide_files.add(tmp_path / "good.tif", small_levels)
    open_and_wait(window, qtbot, good)
    bad = tmp_path / "broken.svs"
    bad.write_bytes(b"II*\x00 this is not really a TIFF" * 10)
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:
        window.open_slides([bad])
        qtbot.waitUntil(lambda: any("broken.svs" in n.message for n in seen), timeout=20_000)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    message = next(n.message for n in seen if "broken.svs" in n.message)
    assert str(bad) in message
    assert str(bad.resolve()) not in window.panels.slides.paths()  # never listed
    # the whole message, not one elided line, is on the canvas
    qtbot.waitUntil(lambda: window.overlays.error.isVisible(), timeout=5_000)
    assert window.overlays.error.text() == message
    assert window.session.current.path == good.resolve()  # the good slide is still shown
    # and the window still works: another slide opens
    other = slide_files.add(tmp_path / "other.tif", synthetic_levels(512, 384, 2, seed=3))
    open_and_wait(window, qtbot, other)
    assert window.viewer.layers[0].name == "other"


def test_switching_slides_closes_the_last_and_frees_its_tiles(
    make_window, slide_files, small_levels, tmp_path, qtbot
):
    window = make_window()
    first = slide_files.add(tmp_path / "first.tif", small_levels)
    second = slide_files.add(tmp_path / "second.tif", synthetic_levels(1024, 768, 3, seed=5))
    open_and_wait(window, qtbot, first)
    look_at(window, qtbot, 0, (100, 100))
    cache = window.session.cache
    first_token = window.session.current.data.token
    held = sum(t.nbytes for k, t in cache._tiles.items() if k[0] == first_token)
    assert held > 0
    old_slide = window.session.current.slide
    open_and_wait(window, qtbot, second)
    assert old_slide.closed
    assert not any(k[0] == first_token for k in cache._tiles)
    assert [layer.name for layer in window.viewer.layers] == ["second", "Annotations"]
    assert cache.nbytes <= cache.max_bytes


def test_dropping_slide_files_opens_them(make_window, slide_files, small_levels, tmp_path, qtbot):
    window = make_window()
    path = slide_files.add(tmp_path / "dropped.tif", small_levels)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    qt_viewer = window.viewer.window._qt_viewer  # the drop target napari gives no public handle on
    event = QDropEvent(
        QPoint(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    # Qt delivers a drop only while a real drag runs; hand it to the window's filter as Qt would
    assert window._drops.eventFilter(qt_viewer, event) is True
    qtbot.waitUntil(lambda: window.session.current is not None, timeout=20_000)
    assert window.session.current.path == path.resolve()
    assert window.panels.slides.paths() == [str(path.resolve())]


def test_opening_a_real_file_through_open_slide(make_window, aperio_svs, qtbot, tmp_path):
    window = make_window()
    open_and_wait(window, qtbot, aperio_svs)
    shown = window.session.current
    assert shown.slide.dimensions == (2220, 2967)
    assert window.panels.info.fields["Resolution"].text().startswith("0.499")
    shot = look_at(window, qtbot, 0, (1000, 1200))
    h, w = min(shot.shape[0], 2967 - 1200), min(shot.shape[1], 2220 - 1000)
    save_shot(shot, "aperio-level0", tmp_path)
    assert agreement(shot, shown.slide.read_region((1000, 1200), 0, (w, h))) > 0.999
