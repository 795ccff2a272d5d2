"""A project of many slides stays quick: lists are filled in one pass, thumbnails decoded
once, and a slide already listed does not rebuild the list when it opens.

(The window's figures at 1,000 slides are in ``tests/benchmarks/test_big_project.py``.)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from PIL import Image
from slidescope.app.project.project import Project


def test_the_train_dock_fills_many_slides_in_one_pass(qtbot, monkeypatch) -> None:
    from slidescope.app.ui.widgets.train_dock import SlideRow, TrainDock

    dock = TrainDock()
    qtbot.addWidget(dock)
    reads = []
    ticked = TrainDock.ticked
    monkeypatch.setattr(TrainDock, "ticked", lambda self: reads.append(1) or ticked(self))
    rows = [SlideRow(f"slide-{i}", "tumor" if i % 2 else None, i % 3) for i in range(300)]
    for _ in range(2):  # listed again (a refresh) as quickly as the first time
        reads.clear()
        dock.set_slides(rows)
        assert len(reads) == 1  # the caution reads the ticks once, not once per row
    assert dock.slides_table.rowCount() == 300
    assert len(dock.ticked()) == sum(1 for r in rows if r.label or r.regions)


def _project(folder: Path, n: int) -> Project:
    project = Project.create(folder / "project")
    thumbnail = folder / "thumbnail.png"
    Image.new("RGB", (64, 48), (200, 150, 180)).save(thumbnail)
    for i in range(n):
        slide = folder / "slides" / f"s{i}.svs"
        slide.parent.mkdir(exist_ok=True)
        slide.write_bytes(b"slide")
        entry = project.add_slide(slide)
        target = project.thumbnail_path(entry.slide_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(thumbnail.read_bytes())
    project.save()
    return project


def test_the_slide_list_decodes_each_thumbnail_once(qtbot, tmp_path) -> None:
    from slidescope.app.ui.widgets.slide_list import SlideList

    project = _project(tmp_path, 5)
    slides = SlideList()
    qtbot.addWidget(slides)
    slides.show_project(project)
    first = [slides.list.item(i).icon().cacheKey() for i in range(5)]
    slides.show_project(project)
    assert [slides.list.item(i).icon().cacheKey() for i in range(5)] == first
    # a thumbnail made again is read again
    changed = project.thumbnail_path(next(iter(project)).slide_id)
    Image.new("RGB", (64, 48), (10, 10, 10)).save(changed)
    os.utime(changed, ns=(1, 1))
    slides.show_project(project)
    assert slides.list.item(0).icon().cacheKey() != first[0]
    assert [slides.list.item(i).icon().cacheKey() for i in range(1, 5)] == first[1:]
    # another listing keeps only its own icons: a closed project's are not held
    assert len(slides._icons) == 5
    slides.show_project(None, [tmp_path / "slides" / "s0.svs"])
    assert slides._icons == {}


def _listed(qtbot, tmp_path: Path, n: int) -> tuple[Project, Any, Any]:
    """A project of ``n`` slides listed by a catalog: (project, slide list, catalog)."""
    from slidescope.app.ui.background import BackgroundJobs
    from slidescope.app.ui.slide_catalog import SlideCatalog
    from slidescope.app.ui.widgets.slide_list import SlideList

    project = _project(tmp_path, n)
    slides = SlideList()
    qtbot.addWidget(slides)
    catalog = SlideCatalog(BackgroundJobs(None), slides, None)
    catalog.project = project
    catalog.refresh()
    return project, slides, catalog


def test_opening_a_listed_slide_leaves_the_list_as_it_is(qtbot, tmp_path) -> None:
    from slidescope.app.ui.background import BackgroundJobs
    from slidescope.app.ui.slide_catalog import SlideCatalog

    project, slides, catalog = _listed(qtbot, tmp_path, 3)
    shown = []
    slides.show_project = lambda *args: shown.append(args)  # type: ignore[method-assign]
    catalog.add_opened(project.slide_path(next(iter(project))))
    assert shown == []  # listed already: nothing rebuilt
    loose = SlideCatalog(BackgroundJobs(None), slides, None)
    loose.add_opened(tmp_path / "slides" / "s0.svs")
    loose.add_opened(tmp_path / "slides" / "s0.svs")
    assert len(shown) == 1  # a loose slide is listed once


def test_an_analysis_state_changes_its_slide_s_line_only(qtbot, tmp_path) -> None:
    project, slides, catalog = _listed(qtbot, tmp_path, 3)
    items = [slides.list.item(i) for i in range(3)]
    entry = list(project)[1]
    project.set_analysis(entry.slide_id, "demo_model", "done", predicted="lesion")
    catalog.show_entry(entry)
    assert [slides.list.item(i) for i in range(3)] == items  # the same items, not rebuilt
    assert "done" in slides.list.item(1).text()
    assert slides.list.item(1).text().startswith(entry.slide_id)
    assert "done" not in slides.list.item(0).text()


def test_the_train_dock_reads_each_annotation_file_once_until_it_changes(
    window_factory, tmp_path, monkeypatch, qtbot
) -> None:
    """The Train dock lists every slide's region count on every slide shown: each file is
    parsed once until it changes; a damaged one counts nothing and breaks nothing."""
    import json

    import slidescope.app.ui.train_session as train_session

    project = _project(tmp_path, 3)
    entries = list(project)
    square = [[[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]]]
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": square},
               "properties": {"classification": {"name": "Tumor"}}}  # fmt: skip
    files = [project.annotation_path(e.slide_id) for e in entries]
    files[0].parent.mkdir(parents=True, exist_ok=True)
    files[0].write_text(json.dumps({"type": "FeatureCollection", "features": [feature] * 2}))
    files[1].write_text("{ not json")
    parsed = []
    read = train_session.read_annotations
    monkeypatch.setattr(
        train_session, "read_annotations", lambda path: parsed.append(path) or read(path)
    )
    win = window_factory()
    win.open_project(project.folder)
    qtbot.waitUntil(lambda: not win.session.busy, timeout=30_000)  # its thumbnails job
    win.train.refresh()
    counts = {row.slide_id: row.regions for row in _rows(win.train.dock)}
    assert counts == {entries[0].slide_id: 2, entries[1].slide_id: 0, entries[2].slide_id: 0}
    parsed.clear()
    for _ in range(3):
        win.train.refresh()
    assert parsed == []  # unchanged files: not parsed again
    files[0].write_text(json.dumps({"type": "FeatureCollection", "features": [feature] * 3}))
    win.train.refresh()
    assert parsed == [files[0]]
    assert {r.slide_id: r.regions for r in _rows(win.train.dock)}[entries[0].slide_id] == 3


def _rows(dock):
    from slidescope.app.ui.widgets.train_dock import SlideRow

    table = dock.slides_table
    rows = []
    for i in range(table.rowCount()):
        item = table.item(i, 0)
        slide_id = item.data(0x0100)  # Qt.UserRole
        regions = int(item.text().rsplit("· ", 1)[1].split()[0])
        rows.append(SlideRow(slide_id, None, regions))
    return rows


def test_a_project_analysis_records_its_slides_in_one_save(
    window_factory, tmp_path, qtbot
) -> None:
    """ "Analyse project" marks every slide queued, then done or failed: one save of the
    project and one list update each time, not one a slide (tens of seconds at 1,000)."""
    project = _project(tmp_path, 30)
    win = window_factory()
    win.open_project(project.folder)
    qtbot.waitUntil(lambda: not win.session.busy, timeout=30_000)  # its thumbnails job
    opened = win.session.project
    saves = []
    save = opened.save
    opened.save = lambda: saves.append(1) or save()  # type: ignore[method-assign]
    paths = [opened.slide_path(e) for e in opened]
    win.analysis._record_all({path: {} for path in paths}, "queued")
    assert len(saves) == 1
    assert all(e.analyses[win.analysis.key]["state"] == "queued" for e in opened)
    texts = [win.panels.slides.list.item(i).text() for i in range(30)]
    assert all("queued" in text for text in texts)
