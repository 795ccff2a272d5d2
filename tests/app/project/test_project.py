"""The project folder: created, listed, saved atomically, reopened as it was."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from slidescope.app.jobs import run_job
from slidescope.app.project.project import (
    FORMAT_VERSION,
    PROJECT_FILE,
    Project,
    ProjectError,
    is_slide_path,
)
from slidescope.app.project.thumbnails import make_thumbnails


def touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"slide")
    return path


def test_create_save_and_reopen(tmp_path):
    folder = tmp_path / "proj"
    project = Project.create(folder, name="Cohort A")
    inside = touch(folder / "slides" / "a.svs")
    outside = touch(tmp_path / "elsewhere" / "b.ndpi")
    project.add_slide(inside)
    project.add_slide(outside)
    project.set_analysis("a", "demo-abmil", "done", result="results/a.h5")
    project.save()

    data = json.loads((folder / PROJECT_FILE).read_text())
    assert data["format_version"] == FORMAT_VERSION
    assert [s["path"] for s in data["slides"]] == ["slides/a.svs", outside.resolve().as_posix()]
    for sub in ("thumbnails", "caches", "results"):
        assert (folder / sub).is_dir()

    again = Project.open(folder)
    assert again.name == "Cohort A"
    assert [e.slide_id for e in again] == ["a", "b"]
    assert again.slide_path("a") == inside.resolve()
    assert again.slide("a").analyses["demo-abmil"]["state"] == "done"
    assert again.slide("a").analyses["demo-abmil"]["result"] == "results/a.h5"
    assert Project.open(folder / PROJECT_FILE).name == "Cohort A"


def test_moving_the_folder_keeps_inside_slides(tmp_path):
    project = Project.create(tmp_path / "p1")
    project.add_slide(touch(tmp_path / "p1" / "x.tiff"))
    project.save()
    (tmp_path / "p1").rename(tmp_path / "p2")
    moved = Project.open(tmp_path / "p2")
    assert moved.slide_path("x").exists()


def test_same_stem_twice_gets_distinct_ids_and_re_adding_is_a_no_op(tmp_path):
    project = Project.create(tmp_path / "p")
    one = project.add_slide(touch(tmp_path / "d1" / "s.svs"))
    two = project.add_slide(touch(tmp_path / "d2" / "s.svs"))
    assert (one.slide_id, two.slide_id) == ("s", "s-2")
    assert project.add_slide(tmp_path / "d1" / "s.svs") is one
    assert len(project) == 2
    project.remove_slide("s")
    assert [e.slide_id for e in project] == ["s-2"]


def test_add_folder_takes_slides_only(tmp_path):
    for name in ("b.svs", "a.tif", "notes.txt", "c.ndpi"):
        touch(tmp_path / "in" / name)
    project = Project.create(tmp_path / "p")
    added = project.add_folder(tmp_path / "in")
    assert [e.slide_id for e in added] == ["a", "b", "c"]
    assert is_slide_path("x.ome.zarr")
    assert not is_slide_path("x.txt")


def test_errors_name_the_folder(tmp_path):
    with pytest.raises(ProjectError, match="not a SlideScope project"):
        Project.open(tmp_path)
    Project.create(tmp_path / "p")
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(tmp_path / "p")
    (tmp_path / "p" / PROJECT_FILE).write_text("{not json")
    with pytest.raises(ProjectError, match="damaged project file"):
        Project.open(tmp_path / "p")
    project = Project.create(tmp_path / "q")
    with pytest.raises(ProjectError, match="no such slide file"):
        project.add_slide(tmp_path / "missing.svs")
    with pytest.raises(ProjectError, match="no slide 'zz'"):
        project.slide("zz")
    with pytest.raises(ProjectError, match="unknown analysis state"):
        project.set_analysis("zz", "m", "finished")


def test_save_is_atomic(tmp_path, monkeypatch):
    project = Project.create(tmp_path / "p", name="before")
    before = (tmp_path / "p" / PROJECT_FILE).read_text()
    project.name = "after"

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("slidescope.models.files.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        project.save()
    assert (tmp_path / "p" / PROJECT_FILE).read_text() == before
    assert [p.name for p in (tmp_path / "p").iterdir() if p.name.endswith(".tmp")] == []


class FakeSlide:
    def __init__(self, path: Path) -> None:
        from slidescope.app.slides.slide import SlideIdentity

        self.path = path
        self.identity = SlideIdentity(path.stem, "f" * 16, 400, 300, (0.5, 0.5))

    def thumbnail(self, size: int) -> np.ndarray:
        return np.full((size * 3 // 4, size, 3), 200, dtype=np.uint8)

    def __enter__(self) -> FakeSlide:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def test_thumbnails_job_fills_thumbnails_and_identity_and_goes_on_after_a_failure(tmp_path):
    from slidescope.app.slides.errors import CorruptSlideError

    project = Project.create(tmp_path / "p")
    project.add_slide(touch(tmp_path / "good.svs"))
    project.add_slide(touch(tmp_path / "bad.svs"))

    def opener(path: Path) -> FakeSlide:
        if path.name == "bad.svs":
            raise CorruptSlideError(path, "truncated")
        return FakeSlide(path)

    steps = []
    failed = run_job(make_thumbnails(project, opener, size=64), on_progress=steps.append)
    assert list(failed) == ["bad"]
    assert "truncated" in failed["bad"]
    assert steps[-1].done == steps[-1].total == 2
    assert project.thumbnail_path("good").exists()
    reopened = Project.open(tmp_path / "p")
    assert reopened.slide("good").identity["width"] == 400
    assert reopened.slide("bad").identity is None
    # a second run only retries what is missing
    again = run_job(make_thumbnails(reopened, opener, size=64))
    assert list(again) == ["bad"]


def test_real_slide_thumbnail(tmp_path, aperio_svs):
    project = Project.create(tmp_path / "p")
    project.add_slide(aperio_svs)
    assert run_job(make_thumbnails(project, size=128)) == {}
    from PIL import Image

    with Image.open(project.thumbnail_path(project.slides[0].slide_id)) as image:
        assert max(image.size) == 128


def test_find_resolves_each_slide_once_and_follows_links(tmp_path, monkeypatch):
    """A 1,000-slide project is searched on every slide shown: each stored path is resolved
    (a system call) once, not on every lookup; a slide reached through a link is found."""
    project = Project.create(tmp_path / "proj")
    slides = [project.add_slide(touch(tmp_path / "s" / f"{i}.svs")) for i in range(20)]
    link = tmp_path / "link.svs"
    link.symlink_to(tmp_path / "s" / "7.svs")
    calls = []
    resolve = Path.resolve

    def counted(self, *args, **kwargs):
        calls.append(self)
        return resolve(self, *args, **kwargs)

    monkeypatch.setattr(Path, "resolve", counted)
    for _ in range(5):
        assert project.find(tmp_path / "s" / "19.svs") is slides[19]
        assert project.find(link) is slides[7]
        assert project.find(tmp_path / "s" / "missing.svs") is None
    assert len(calls) <= 20 + 3 * 5  # each slide once, and each looked-up path


def test_find_all_looks_up_many_files_in_one_pass(tmp_path):
    project = Project.create(tmp_path / "proj")
    slides = [project.add_slide(touch(tmp_path / "s" / f"{i}.svs")) for i in range(5)]
    found = project.find_all(
        [tmp_path / "s" / "3.svs", tmp_path / "nope.svs", str(tmp_path / "s" / "0.svs")]
    )
    assert found == [slides[3], None, slides[0]]
