"""The Train dock run to completion on tiny data: curves, new version, before / after.

Four 4096 x 4096 demo slides in a project (two with glandular lesions whose true outlines
are their annotations, two labelled normal); the bundled model is fine-tuned for two
epochs from the dock; the window then shows the old and new heatmaps side by side. The
time from "training finished" to the new heatmaps on screen is printed (the figure of
benchmark 3, measured here on tiny data).
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from slidescope.app.demo.generate import generate_demo_slide, lesions_path_for
from slidescope.app.demo.layout import planned_lesion_count
from slidescope.app.jobs import run_job
from slidescope.app.project.project import Project
from slidescope.app.ui.analysis_session import bundled_checkpoint
from ui_slides import save_shot


@pytest.fixture(scope="module")
def tiny_slides(tmp_path_factory) -> list[tuple[Path, bool]]:
    folder = tmp_path_factory.mktemp("train-slides")
    picked: list[tuple[Path, bool]] = []
    seed, wanted = 300, {True: 2, False: 2}
    while any(wanted.values()):
        lesion = planned_lesion_count(seed) > 0
        if wanted[lesion]:
            path = folder / f"demo_{seed}.tiff"
            run_job(generate_demo_slide(path, 4096, 4096, seed, lesion_kind="glandular"))
            if lesion and not json.loads(lesions_path_for(path).read_text())["features"]:
                seed += 1
                continue
            wanted[lesion] -= 1
            picked.append((path, lesion))
        seed += 1
    return picked


def _project(folder: Path, slides: list[tuple[Path, bool]]) -> Path:
    project = Project.create(folder)
    for path, lesion in slides:
        entry = project.add_slide(path)
        if lesion:
            outlines = json.loads(lesions_path_for(path).read_text())
            for feature in outlines["features"]:
                feature["properties"]["classification"] = {"name": "lesion"}
            project.annotation_path(entry.slide_id).parent.mkdir(parents=True, exist_ok=True)
            project.annotation_path(entry.slide_id).write_text(json.dumps(outlines))
        else:
            project.set_label(entry.slide_id, "normal")
    project.save()
    return folder


def test_the_dock_cautions_while_no_ticked_slide_has_regions(qtbot) -> None:
    from qtpy.QtCore import Qt
    from slidescope.app.ui.widgets.train_dock import SlideRow, TrainDock

    dock = TrainDock()
    qtbot.addWidget(dock)
    dock.set_slides([SlideRow("a", "lesion", 0), SlideRow("b", "normal", 0)])
    assert not dock.caution.isHidden()
    assert "slide labels alone" in dock.caution.text()
    dock.set_slides([SlideRow("a", None, 3), SlideRow("b", "normal", 0)])
    assert dock.caution.isHidden()
    dock.slides_table.item(0, 0).setCheckState(Qt.Unchecked)  # untick the annotated one
    assert dock.ticked() == ["b"]
    assert not dock.caution.isHidden()
    dock.slides_table.item(1, 0).setCheckState(Qt.Unchecked)  # nothing ticked: nothing to say
    assert dock.caution.isHidden()


def test_train_dock_fine_tunes_and_shows_before_and_after(
    window_factory, tiny_slides, tmp_path, qtbot
) -> None:
    folder = _project(tmp_path / "project", tiny_slides)
    win = window_factory(size=(1600, 1000), checkpoint=bundled_checkpoint())
    win.open_project(folder)
    first = tiny_slides[0][0]
    win.open_slides([first])
    qtbot.waitUntil(lambda: win.session.current is not None, timeout=60_000)
    win.analysis.run_slide()
    qtbot.waitUntil(lambda: win.analysis.analysis is not None, timeout=300_000)
    dock, train = win.train.dock, win.train
    train.refresh()
    assert sorted(dock.ticked()) == sorted(p.stem for p, _ in tiny_slides)
    dock.epochs.setValue(2)
    dock.outside_class.setText("normal")
    worker = train.start()
    assert worker is not None
    qtbot.waitUntil(lambda: "compared" in train.marks, timeout=600_000)
    project = Project.open(folder)
    assert [v.name for v in project.model_versions] == ["demo_model-ft1"]
    assert (folder / "models" / "demo_model-ft1.safetensors").is_file()
    assert len(dock._points["loss"]) == 2
    names = [layer.name for layer in win.viewer.layers]
    assert "after: slide" in names
    assert any(n.startswith("after: attention") for n in names)
    # both models' verdicts on the shown slide, by each one's rule, beside the pictures
    status = dock.status.text()
    before = win.analysis.analysis
    assert f"before ({before.predicted_class}, " in status
    assert re.search(r"after \((lesion|normal), \d+%\)", status), status
    seconds = train.marks["compared"] - train.marks["trained"]
    print(f"\ntraining finished -> new heatmaps on screen: {seconds:.2f} s")
    win.docks["train"].raise_()  # the picture shows the curves beside before/after
    qtbot.wait(500)
    save_shot(
        win.viewer.screenshot(canvas_only=False, flash=False), "train-dock-before-after", tmp_path
    )
    # the review queue steps through the new analysis' uncertain patches
    train.find_review()
    assert train.cursor.current is not None
    # keep: the new version becomes the active one
    train.keep()
    assert Project.open(folder).active_model == "demo_model-ft1"
    start = time.perf_counter()
    qtbot.waitUntil(lambda: not win.session.busy, timeout=120_000)
    assert time.perf_counter() - start < 120
