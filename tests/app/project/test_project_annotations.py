"""Project additions for annotation and fine-tuning: classes, labels, model versions."""

from __future__ import annotations

import json

import pytest
from slidescope.app.annotations.classes import DEFAULT_CLASSES, PathClass
from slidescope.app.project.labels import LabelsError
from slidescope.app.project.project import FORMAT_VERSION, PROJECT_FILE, Project, ProjectError


def make_project(tmp_path, n: int = 3) -> Project:
    project = Project.create(tmp_path / "p")
    for i in range(n):
        slide = tmp_path / f"s{i}.svs"
        slide.write_bytes(b"x")
        project.add_slide(slide)
    return project


def test_classes_default_to_qupaths_and_are_saved(tmp_path) -> None:
    project = make_project(tmp_path, 0)
    assert project.classes == list(DEFAULT_CLASSES)
    project.set_class("Mucin", (10, 20, 30))
    project.set_class("Tumor", (255, 0, 0))
    project.save()
    again = Project.open(project.folder)
    assert again.path_class("Mucin") == PathClass("Mucin", (10, 20, 30))
    assert again.classes[0] == PathClass("Tumor", (255, 0, 0))
    assert (project.folder / "annotations").is_dir()
    assert project.annotation_path("s0") == project.folder / "annotations" / "s0.geojson"


def test_format_1_projects_still_open(tmp_path) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    (folder / PROJECT_FILE).write_text(
        json.dumps(
            {
                "format_version": 1,
                "name": "old",
                "slides": [{"slide_id": "a", "path": "a.svs", "identity": None, "analyses": {}}],
            }
        )
    )
    project = Project.open(folder)
    assert project.classes == list(DEFAULT_CLASSES)
    assert project.slide("a").label is None
    assert project.model_versions == []
    project.save()
    assert json.loads((folder / PROJECT_FILE).read_text())["format_version"] == FORMAT_VERSION


def test_labels_set_import_export(tmp_path) -> None:
    project = make_project(tmp_path)
    project.set_label("s0", "tumor")
    project.set_label("s1", "  ")
    assert project.labels() == {"s0": "tumor"}
    csv = tmp_path / "labels.csv"
    csv.write_text("slide_id,label,split\ns1,normal,train\ns2,tumor,test\nghost,normal,train\n")
    assert project.import_labels_csv(csv) == ["ghost"]
    project.save()
    again = Project.open(project.folder)
    assert again.labels() == {"s0": "tumor", "s1": "normal", "s2": "tumor"}
    out = again.export_labels_csv(tmp_path / "out.csv")
    assert out.read_text().splitlines() == ["slide_id,label", "s0,tumor", "s1,normal", "s2,tumor"]
    bad = tmp_path / "bad.csv"
    bad.write_text("name,class\na,b\n")
    with pytest.raises(LabelsError, match=r"bad\.csv.*slide_id"):
        project.import_labels_csv(bad)


def test_model_versions_are_added_never_overwritten(tmp_path) -> None:
    project = make_project(tmp_path, 0)
    project.models_dir.mkdir()
    base = project.models_dir / "base.safetensors"
    base.write_bytes(b"weights-1")
    v1 = project.add_model_version(base)
    assert v1.file == "models/base.safetensors"
    assert v1.base is None
    assert len(v1.sha256) == 64
    tuned = project.models_dir / "base-ft1.safetensors"
    tuned.write_bytes(b"weights-2")
    v2 = project.add_model_version(tuned, base="base")
    with pytest.raises(ProjectError, match="never replaced"):
        project.add_model_version(tuned)
    outside = tmp_path / "elsewhere.safetensors"
    outside.write_bytes(b"x")
    with pytest.raises(ProjectError, match="under"):
        project.add_model_version(outside)
    with pytest.raises(ProjectError, match="no model version"):
        project.set_active_model("nope")
    project.set_active_model(v2.name)
    project.save()
    again = Project.open(project.folder)
    assert [v.name for v in again.model_versions] == ["base", "base-ft1"]
    assert again.model_version("base-ft1").base == "base"
    assert again.active_model == "base-ft1"
    assert again.model_path("base-ft1") == tuned.resolve()
