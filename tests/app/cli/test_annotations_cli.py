"""``slidescope annotations``: a cohort's QuPath GeoJSON into a project, out, and summarised."""

from __future__ import annotations

import json

from slidescope.app.annotations.store import AnnotationStore
from slidescope.app.cli import main
from slidescope.app.project.project import Project


def qupath_file(path, cls: str, x: float, color=(1, 2, 3)) -> None:
    ring = [[x, 0], [x + 100, 0], [x + 100, 100], [x, 100], [x, 0]]
    path.write_text(
        json.dumps(
            [
                {
                    "type": "Feature",
                    "id": f"id-{cls}-{x}",
                    "geometry": {"type": "Polygon", "coordinates": [ring]},
                    "properties": {
                        "objectType": "annotation",
                        "classification": {"name": cls, "color": list(color)},
                    },
                }
            ]
        )
    )


def make_project(tmp_path) -> Project:
    project = Project.create(tmp_path / "p")
    for name in ("a", "b"):
        slide = tmp_path / f"{name}.svs"
        slide.write_bytes(b"x")
        identity = {
            "slide_id": name,
            "fingerprint": "f",
            "width": 150,
            "height": 150,
            "mpp": [0.5, 0.5],
        }
        project.add_slide(slide, identity=identity)
    project.save()
    return project


def test_import_export_summary_a_cohort(tmp_path, capsys) -> None:
    project = make_project(tmp_path)
    cohort = tmp_path / "qupath"
    cohort.mkdir()
    qupath_file(cohort / "a.svs.geojson", "Tumor", 0)
    qupath_file(cohort / "b.geojson", "Mucin", 100, color=(9, 8, 7))  # half outside: clipped
    qupath_file(cohort / "c.geojson", "Tumor", 0)  # no such slide
    assert main(["annotations", "import", str(project.folder), str(cohort)]) == 1
    out, err = capsys.readouterr()
    assert "c.geojson: no slide of that name" in err
    assert "b.geojson: 1 annotation(s) read; 1 clipped to the slide" in out

    again = Project.open(project.folder)
    assert again.path_class("Mucin").color == (9, 8, 7)
    b = AnnotationStore.for_project(again, "b").load()
    (only,) = list(b)
    assert only.classification == "Mucin"
    assert only.geometry.area == 50 * 100

    # importing again adds nothing new (same ids), --replace replaces
    assert main(["annotations", "import", str(project.folder), str(cohort / "a.svs.geojson")]) == 0
    assert len(AnnotationStore.for_project(again, "a").load()) == 1

    assert (
        main(["annotations", "summary", str(project.folder), "--csv", str(tmp_path / "s.csv")])
        == 0
    )
    out, _ = capsys.readouterr()
    assert "Tumor" in out
    assert "Mucin" in out
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "slide_id,class,count,area_mm2,perimeter_um"
    assert "a,Tumor,1,0.0025,200.0" in lines  # 100 px * 0.5 µm = 50 µm square

    exported = tmp_path / "out"
    assert main(["annotations", "export", str(project.folder), "--out", str(exported)]) == 0
    data = json.loads((exported / "a.geojson").read_text())
    feature = data["features"][0]
    assert feature["id"] == "id-Tumor-0"
    assert feature["properties"]["classification"] == {"name": "Tumor", "color": [200, 0, 0]}


def test_a_broken_file_is_one_line_and_touches_nothing(tmp_path, capsys) -> None:
    project = make_project(tmp_path)
    good = tmp_path / "a.geojson"
    qupath_file(good, "Tumor", 0)
    assert main(["annotations", "import", str(project.folder), str(good)]) == 0
    saved = project.annotation_path("a").read_text()
    broken = tmp_path / "x" / "a.geojson"
    broken.parent.mkdir()
    broken.write_text('{"type": "FeatureCollection", "features": [')
    assert main(["annotations", "import", str(project.folder), str(broken), "--replace"]) == 1
    _, err = capsys.readouterr()
    assert "a.geojson: not valid JSON" in err
    assert project.annotation_path("a").read_text() == saved
