"""Annotating in the window: draw, classify, brush, undo, table, autosave, reopen, import."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from napari.layers.base._base_constants import ActionType
from shapely import Point
from slidescope.app.annotations.geojson import read_annotations
from slidescope.app.annotations.model import Annotation
from slidescope.app.display.placement import SlideSpace, shapes_placement
from slidescope.app.project.project import Project
from slidescope.app.ui.annotation_layer import is_annotation_click
from slidescope.app.ui.widgets.annotations_dock import area_text
from slidescope.app.user_dirs import user_data_dir
from ui_slides import SlideFiles, synthetic_levels


@pytest.fixture
def make_window(window_factory, slide_files: SlideFiles):
    return functools.partial(window_factory, open_slide=slide_files, cache_bytes=64 * 1024**2)


def open_and_wait(win, qtbot, path) -> None:
    win.open_slides([path])
    qtbot.waitUntil(
        lambda: (
            win.session.current is not None
            and win.session.current.path == path.resolve()
            and win.annotation.view is not None
        ),
        timeout=20_000,
    )


def draw(win, qtbot, vertices_xy, shape_type="polygon") -> None:
    """What napari does when the user finishes a shape: add it, then say so."""
    layer = win.annotation.view.layer
    before = len(win.annotation.annotations)
    layer.add(np.asarray(vertices_xy, dtype=float)[:, ::-1], shape_type=shape_type)
    qtbot.waitUntil(lambda: len(win.annotation.annotations) == before + 1, timeout=5_000)


def test_draw_classify_brush_undo_and_table(
    make_window, slide_files, small_levels, tmp_path, qtbot
):
    win = make_window(size=(1600, 1000))
    path = slide_files.add(tmp_path / "s.tif", small_levels, mpp=(0.5, 0.5))
    open_and_wait(win, qtbot, path)
    session = win.annotation
    layer = session.view.layer
    # placed in level-0 space like every overlay
    placement = shapes_placement(SlideSpace((0.5, 0.5)))
    assert tuple(layer.scale) == placement.scale
    assert tuple(layer.translate) == placement.translate

    session.set_tool("polygon")
    assert is_annotation_click(win.viewer)  # such clicks never pin the heatmap read-out
    draw(win, qtbot, [[100, 100], [600, 100], [600, 500], [100, 500]])
    (first,) = list(session.annotations)
    assert first.classification == "Tumor"
    assert first.geometry.area == pytest.approx(500 * 400)

    session.set_tool("rectangle")
    session.choose_class("Stroma")
    draw(win, qtbot, [[800, 100], [1000, 100], [1000, 300], [800, 300]], "rectangle")
    session.set_tool("ellipse")
    draw(win, qtbot, [[1200, 100], [1400, 100], [1400, 300], [1200, 300]], "ellipse")
    ellipse = list(session.annotations)[-1]
    assert ellipse.geometry.area == pytest.approx(np.pi * 100 * 100, rel=0.01)
    session.set_tool("point")
    # the point tool places points through our own drag callback
    session.annotations.add(Annotation(Point(50, 50), session.active_class))
    qtbot.waitUntil(lambda: len(layer.data) == 4, timeout=5_000)

    # set class with the number keys' handler on a selection
    session.set_tool("select")
    session.view.select_ids([first.id])
    session.class_by_number(4)
    assert session.annotations[first.id].classification == "Necrosis"
    assert session.view.selected_ids() == [first.id]

    # moving a shape in the layer moves the annotation
    index = session.view.shape_ids.index(first.id)
    layer._data_view.shift(index, np.array([10.0, 20.0]))
    layer.events.data(
        value=layer.data, action=ActionType.CHANGED, data_indices=(index,), vertex_indices=((),)
    )
    qtbot.waitUntil(lambda: session.annotations[first.id].geometry.bounds[0] == 120, timeout=5_000)

    # the brush merges into the polygon under it; undo takes it back
    session.set_tool("brush")
    session.choose_class("Necrosis")
    area = session.annotations[first.id].geometry.area
    session.view.stroke([(620, 300), (700, 300)])
    assert session.annotations[first.id].geometry.area > area
    session.undo()
    assert session.annotations[first.id].geometry.area == pytest.approx(area)
    session.redo()
    session.set_tool("eraser")
    session.view.stroke([(300, 0), (300, 700)])
    assert session.annotations[first.id].geometry.geom_type == "MultiPolygon"
    # the layer shows what the core holds
    assert set(session.view.shape_ids) == {a.id for a in session.annotations}

    # the table lists every annotation; a click selects and centres on it
    qtbot.waitUntil(lambda: win.annotations_dock.table.rowCount() == 4, timeout=5_000)
    table = win.annotations_dock.table
    assert [table.horizontalHeaderItem(c).text() for c in range(2)] == ["Annotation", "Size"]
    point_row = win.annotations_dock.row_ids.index(list(session.annotations)[3].id)
    assert table.item(point_row, 1).text() == "—"  # a point has no size
    polygon_row = win.annotations_dock.row_ids.index(first.id)
    assert table.item(polygon_row, 0).text() == session.annotations[first.id].classification
    assert not table.item(polygon_row, 0).icon().isNull()  # in the class's colour
    # its area at 0.5 µm/px (brushed and erased above), its perimeter in the tooltip
    polygon = session.annotations[first.id].geometry
    area = f"{polygon.area * 0.25:,.0f} µm²"
    assert table.item(polygon_row, 1).text() == area
    perimeter = f"{polygon.length * 0.5 / 1000:.2f} mm"  # over a millimetre: in mm
    assert table.item(polygon_row, 1).toolTip() == f"Area {area} · perimeter {perimeter}"
    # at 1600 × 1000 the class and the size are read whole, each on one line (four columns
    # showed "Tu..." and wrapped "27,367 µm²")
    metrics = table.horizontalHeader().fontMetrics()
    size_room = table.horizontalHeader().sectionSize(1)
    assert size_room >= metrics.horizontalAdvance("99,999 µm²")
    assert table.horizontalHeader().sectionSize(0) >= metrics.horizontalAdvance("Immune cells")
    for r in range(table.rowCount()):
        assert metrics.horizontalAdvance(table.item(r, 1).text()) < size_room - 6
    for area in (27_367.4, 0.1234e6, 12.345e6, 345.67e6, 1_875.2e6):  # up to a whole slide
        assert metrics.horizontalAdvance(area_text(area)) < size_room - 6
    assert [area_text(a) for a in (0.1234e6, 12.345e6, 345.67e6)] == [
        "0.123 mm²", "12.35 mm²", "345.7 mm²",
    ]  # fmt: skip
    # a class's new colour reaches its rows' swatches
    polygon_class = session.annotations[first.id].classification
    session.set_class_color(polygon_class, (0, 200, 0))
    swatch = table.item(polygon_row, 0).icon().pixmap(8, 8).toImage().pixelColor(4, 4)
    assert (swatch.red(), swatch.green(), swatch.blue()) == (0, 200, 0)
    row = win.annotations_dock.row_ids.index(ellipse.id)
    win.annotations_dock._row_clicked(row, 0)
    assert session.view.selected_ids() == [ellipse.id]
    centre = win.viewer.scene.camera.center[-2:]
    assert centre == pytest.approx((200 * 0.5, 1300 * 0.5))

    # a locked annotation keeps its place when the layer moves it
    session.lock_selected(True)
    index = session.view.shape_ids.index(ellipse.id)
    layer._data_view.shift(index, np.array([50.0, 50.0]))
    layer.events.data(
        value=layer.data, action=ActionType.CHANGED, data_indices=(index,), vertex_indices=((),)
    )
    qtbot.wait(50)
    assert session.annotations[ellipse.id].geometry.equals(ellipse.geometry)

    # per-class visibility: hidden shapes leave the layer, not the slide's annotations
    # (the erased polygon is two shapes; rectangle, ellipse and point are Stroma)
    assert len(layer.data) == 5
    session.set_class_visible("Stroma", False)
    assert len(layer.data) == 2
    assert len(session.annotations) == 4
    session.set_class_visible("Stroma", True)
    assert len(layer.data) == 5

    win.qt_window.resize(1600, 1000)
    win.viewer.reset_view()
    qtbot.wait(200)
    shot = win.viewer.screenshot(canvas_only=False, flash=False)
    from PIL import Image

    Image.fromarray(np.asarray(shot)[..., :3]).save(tmp_path / "annotations-window.png")
    assert shot.shape[0] > 500


def test_autosave_switch_and_reopen_in_a_project(
    make_window, slide_files, small_levels, tmp_path, qtbot
):
    first = slide_files.add(tmp_path / "a.tif", small_levels)
    second = slide_files.add(tmp_path / "b.tif", synthetic_levels(1024, 768, 2, seed=2))
    project = Project.create(tmp_path / "p")
    project.add_slide(first)
    project.add_slide(second)
    project.save()
    win = make_window()
    win.open_project(project.folder)
    open_and_wait(win, qtbot, first)
    session = win.annotation
    session.set_tool("polygon")
    draw(win, qtbot, [[10, 10], [300, 10], [300, 200]])
    saved = tmp_path / "p" / "annotations" / "a.geojson"
    # autosaved within 2 s, in the background
    qtbot.waitUntil(saved.exists, timeout=2_500)
    assert len(json.loads(saved.read_text())["features"]) == 1
    # an edit, then a switch: saved at once
    draw(win, qtbot, [[400, 400], [500, 400], [500, 500]])
    open_and_wait(win, qtbot, second)
    assert len(json.loads(saved.read_text())["features"]) == 2
    assert len(session.annotations) == 0
    # back: everything is there
    open_and_wait(win, qtbot, first)
    assert len(session.annotations) == 2


def test_slides_alone_keep_annotations_in_the_user_folder_and_import_qupath(
    make_window, slide_files, small_levels, tmp_path, qtbot, monkeypatch
):
    path = slide_files.add(tmp_path / "alone.tif", small_levels)
    win = make_window()
    open_and_wait(win, qtbot, path)
    qupath = tmp_path / "alone.geojson"
    qupath.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "id": "q1",
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [[[0, 0], [50, 0], [50, 50], [0, 0]]],
                        },
                        "properties": {
                            "objectType": "annotation",
                            "classification": {"name": "Mucin", "color": [1, 2, 3]},
                        },
                    },
                    {
                        "type": "Feature",
                        "id": "q2",
                        "geometry": {
                            "type": "LineString",
                            "coordinates": [[0, 0], [99999, 99999]],
                        },
                        "properties": {"objectType": "annotation"},
                    },
                ],
            }
        )
    )
    assert win.drop_paths([str(qupath)])
    assert [a.classification for a in win.annotation.annotations] == ["Mucin", None]
    assert "Mucin" in win.annotations_dock.class_buttons
    win.session.close_slide()
    stored = list(user_data_dir().rglob("alone-*.geojson"))
    assert stored
    annotations, _ = read_annotations(stored[0])
    assert {a.id for a in annotations} == {"q1", "q2"}
    open_and_wait(win, qtbot, path)
    assert len(win.annotation.annotations) == 2

    # a file without ids (a generator's, a script's) imported twice adds its shapes once;
    # our own export imported back adds nothing
    plain = tmp_path / "plain.geojson"
    square = [[[100, 100], [200, 100], [200, 200], [100, 200], [100, 100]]]
    plain.write_text(json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Polygon", "coordinates": square},
        "properties": {"classification": {"name": "Tumor"}},
    }]}))  # fmt: skip
    told: list[str] = []
    monkeypatch.setattr("slidescope.app.ui.annotation_session.show_info", told.append)
    assert win.annotation.import_files([plain]) == 1
    assert win.annotation.import_files([plain]) == 0
    assert told == [  # the count first, where napari's notification shows it
        "1 annotation(s) added from plain.geojson",
        "0 annotation(s) added from plain.geojson; 1 already on the slide, not added again",
    ]
    exported = win.annotation.export_file(tmp_path / "exported.geojson")
    assert win.annotation.import_files([exported]) == 0
    assert len(win.annotation.annotations) == 3


def test_shapes_of_many_geometries_are_each_ones_shapes() -> None:
    """The vectorised pass that draws thousands of plain polygons at once gives what each
    geometry's own shapes are, in order, holes, points, lines and parts included."""
    import shapely
    from slidescope.app.ui.annotation_layer import napari_shapes, napari_shapes_of

    geometries = [
        shapely.Polygon([(0, 0), (10, 0), (10, 5)]),
        Point(3, 4),
        shapely.Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (3, 2), (3, 3)]]),
        shapely.MultiPolygon([shapely.box(0, 0, 1, 1), shapely.box(5, 5, 6, 6)]),
        shapely.LineString([(0, 0), (1, 1)]),
        shapely.box(20, 20, 30, 40),
    ]
    together = napari_shapes_of(geometries, 4.0)
    assert len(together) == len(geometries)
    for shapes, geometry in zip(together, geometries):
        alone = napari_shapes(geometry, 4.0)
        assert [(t, f) for _, t, f in shapes] == [(t, f) for _, t, f in alone]
        for (ours, _, _), (theirs, _, _) in zip(shapes, alone):
            np.testing.assert_array_equal(ours, theirs)
    assert together[0][0][0].tolist() == [[0, 0], [0, 10], [5, 10]]  # (y, x), not closed
    assert napari_shapes_of([], 4.0) == []


def test_an_edit_in_place_draws_at_once_and_the_thumbnail_follows(make_napari_viewer, qtbot):
    from shapely.geometry import box
    from slidescope.app.annotations.model import AnnotationSet
    from slidescope.app.ui.annotation_layer import THUMBNAIL_DELAY_MS, AnnotationLayer

    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.full((400, 400, 3), 255, np.uint8), rgb=True, name="slide")
    annotations = AnnotationSet()
    view = AnnotationLayer(viewer, annotations, SlideSpace((1.0, 1.0)), edge_width=4)
    first = Annotation(box(50, 50, 150, 150), "Tumor")
    annotations.add([first, Annotation(box(200, 200, 260, 260), "Tumor")])
    viewer.reset_view()
    qtbot.wait(THUMBNAIL_DELAY_MS + 100)
    shown, thumbnail = viewer.screenshot(flash=False), view.layer.thumbnail.copy()

    annotations.move([first.id], 150.0, 0.0)  # in place: napari's per-shape edit
    np.testing.assert_allclose(view.layer.data[0].min(axis=0), [50, 200])
    moved = viewer.screenshot(flash=False)
    assert (np.abs(moved.astype(int) - shown.astype(int)).sum(-1) > 30).sum() > 1000
    # the thumbnail redraws every shape: it catches up once the edits pause
    qtbot.waitUntil(lambda: not np.array_equal(view.layer.thumbnail, thumbnail), timeout=2_000)
    view.close()


def test_the_line_tool_measures_a_length(make_window, slide_files, small_levels, tmp_path, qtbot):
    """A ruler: a line dragged across the slide is kept as a line annotation and its length,
    in µm or mm at the slide's scale, is in the table (what a tumour's size is read from)."""
    win = make_window(size=(1600, 1000))
    path = slide_files.add(tmp_path / "s.tif", small_levels, mpp=(0.5, 0.5))
    open_and_wait(win, qtbot, path)
    session = win.annotation
    win.annotations_dock.tool_buttons["line"].click()
    assert session.view.layer.mode == "add_line"
    draw(win, qtbot, [[100, 100], [400, 500]], "line")  # 500 px at 0.5 µm/px: 250 µm
    (line,) = list(session.annotations)
    assert line.kind == "line"
    assert line.geometry.length == pytest.approx(500)
    draw(win, qtbot, [[0, 0], [3000, 0]], "line")  # 1.5 mm
    table = win.annotations_dock.table
    qtbot.waitUntil(lambda: table.rowCount() == 2, timeout=5_000)
    texts = sorted((table.item(r, 1).text(), table.item(r, 1).toolTip()) for r in range(2))
    assert texts == [("1.50 mm", "Length 1.50 mm"), ("250 µm", "Length 250 µm")]
    # saved as a QuPath LineString
    session.flush()
    saved, _report = read_annotations(session.store.path)
    assert sorted(a.geometry.geom_type for a in saved) == ["LineString", "LineString"]
