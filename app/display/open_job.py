"""The open-slide job: parse a slide file and read its overview, in the background.

Both take time on a big file, so the window and the plugin run this job in a worker and only
add the layer (in the UI thread) once it is done. Qt-free: any face can drive it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.jobs import Job, Progress

#: the longer side of the overview read with the slide (the minimap's picture)
OVERVIEW_SIZE = 384


def open_slide_job(
    path: str | Path,
    opener: Callable[[Path], Any] | None = None,
    overview_size: int = OVERVIEW_SIZE,
) -> Job[tuple[Path, Any, np.ndarray]]:
    """Open ``path`` and read its overview; returns ``(path, slide, overview)``.

    Parameters
    ----------
    path : str or Path
        The slide file (or OME-Zarr folder).
    opener : callable, optional
        ``path -> Slide``; :func:`slidescope.app.slides.open_slide` by default.
    overview_size : int
        The overview's longer side in pixels.

    Raises
    ------
    SlideError
        When the file cannot be read (the message names it and why). A slide opened before
        the overview failed is closed again.
    """
    path = Path(path)
    yield Progress(0, 2, "reading the file")
    if opener is None:
        from slidescope.app.slides import open_slide

        slide = open_slide(path)
    else:
        slide = opener(path)
    try:
        yield Progress(1, 2, "reading the overview")
        overview = slide.thumbnail(overview_size)
        yield Progress(2, 2, "ready")
    except BaseException:
        slide.close()
        raise
    return path, slide, overview
