"""Where annotations are saved: project or user folder, backup on a damaged file."""

from __future__ import annotations

import pytest
import shapely
from slidescope.app.annotations.geojson import GeoJSONError
from slidescope.app.annotations.model import Annotation
from slidescope.app.annotations.store import AnnotationStore, user_annotation_path
from slidescope.app.project.project import Project

IDENTITY = {
    "slide_id": "case 1",
    "fingerprint": "ab12cd34",
    "width": 1000,
    "height": 800,
    "mpp": [0.5, 0.5],
}


@pytest.fixture(autouse=True)
def _private_data(tmp_path, monkeypatch):
    monkeypatch.setenv("SLIDESCOPE_DATA", str(tmp_path / "data"))


def test_outside_a_project_annotations_live_in_the_user_folder_by_identity(tmp_path) -> None:
    store = AnnotationStore.for_slide(IDENTITY)
    assert store.path == tmp_path / "data" / "annotations" / "case_1-ab12cd34.geojson"
    annotations = store.load()
    assert len(annotations) == 0
    assert store.is_saved(annotations)
    annotations.add(Annotation(shapely.box(0, 0, 10, 10), "Tumor"))
    assert not store.is_saved(annotations)
    store.save(annotations)
    assert store.is_saved(annotations)
    again = AnnotationStore.for_slide(dict(IDENTITY)).load()
    assert [a.classification for a in again] == ["Tumor"]
    assert again.slide_identity == IDENTITY
    # another file under the same name does not see them
    other = user_annotation_path({**IDENTITY, "fingerprint": "ffff"})
    assert other != store.path


def test_in_a_project_annotations_live_in_its_folder(tmp_path) -> None:
    slide = tmp_path / "s.svs"
    slide.write_bytes(b"x")
    project = Project.create(tmp_path / "p")
    entry = project.add_slide(slide, identity=IDENTITY)
    project.save()
    store = AnnotationStore.for_project(project, entry.slide_id)
    assert store.path == tmp_path / "p" / "annotations" / "s.geojson"
    annotations = store.load()
    annotations.add(Annotation(shapely.box(0, 0, 10, 10), "Stroma"))
    store.save(annotations.snapshot(), revision=annotations.revision)
    assert store.is_saved(annotations)
    assert len(AnnotationStore.for_project(Project.open(tmp_path / "p"), "s").load()) == 1


def test_a_damaged_file_opens_the_backup_with_a_warning_naming_both(tmp_path) -> None:
    store = AnnotationStore(tmp_path / "s.geojson")
    annotations = store.load()
    annotations.add(Annotation(shapely.box(0, 0, 10, 10), "Tumor"))
    store.save(annotations)
    annotations.add(Annotation(shapely.box(20, 0, 30, 10), "Tumor"))
    store.save(annotations)
    store.path.write_text('{"type": "FeatureCollection", "features": [')  # cut short
    loaded = store.load()
    assert len(loaded) == 1
    assert store.warning is not None
    assert str(store.path) in store.warning
    assert str(store.backup) in store.warning

    store.backup.write_text("garbage")
    with pytest.raises(GeoJSONError, match=r"s\.geojson.*s\.geojson\.bkp"):
        store.load()


def test_a_damaged_file_without_backup_is_an_error(tmp_path) -> None:
    store = AnnotationStore(tmp_path / "s.geojson")
    store.path.write_text("{")
    with pytest.raises(GeoJSONError, match="not valid JSON"):
        store.load()
