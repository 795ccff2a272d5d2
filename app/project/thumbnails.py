"""The job that fills a project's thumbnails and slide identities."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from slidescope.app.errors import SlideScopeError
from slidescope.app.jobs import Job, Progress
from slidescope.app.project.project import Project

THUMBNAIL_SIZE = 256


def make_thumbnails(
    project: Project,
    open_slide: Callable[[Path], Any] | None = None,
    size: int = THUMBNAIL_SIZE,
    redo: bool = False,
) -> Job[dict[str, str]]:
    """Write ``thumbnails/<slide_id>.png`` and the identity of every slide that lacks them.

    Parameters
    ----------
    project : Project
        The project; saved at the end (and when cancelled, with what was done).
    open_slide : callable, optional
        ``path -> Slide``; :func:`slidescope.app.slides.open_slide` by default.
    size : int
        Longer side of a thumbnail in pixels.
    redo : bool
        Remake thumbnails that exist already.

    Returns
    -------
    dict
        ``slide_id -> reason`` for every slide that could not be opened (the others go on).
    """
    if open_slide is None:
        from slidescope.app.slides import open_slide as default_open

        open_slide = default_open
    todo = [
        e
        for e in project.slides
        if redo or e.identity is None or not project.thumbnail_path(e.slide_id).exists()
    ]
    failed: dict[str, str] = {}
    try:
        for i, entry in enumerate(todo):
            yield Progress(i, len(todo), f"thumbnail of {entry.slide_id}")
            try:
                with open_slide(project.slide_path(entry)) as slide:
                    project.write_thumbnail(entry.slide_id, slide.thumbnail(size))
                    entry.identity = slide.identity.to_dict()
            except (SlideScopeError, OSError) as error:
                failed[entry.slide_id] = str(error)
        yield Progress(len(todo), len(todo), "thumbnails done")
    finally:
        project.save()
    return failed
