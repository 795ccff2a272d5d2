"""The patches a reviewer looks at first: where the model looked most, and the hardest ones."""

from __future__ import annotations

from typing import Any

import numpy as np
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.jobs import Job, Progress


def top_patches(analysis: SlideAnalysis, k: int = 8) -> dict[str, list[int]]:
    """The ``k`` patches the model looked at most, and the ``k`` hardest ones.

    "Hardest": the highest attention once the salient set is masked (MHIM's view).

    Returns
    -------
    dict
        ``{"top attention": [...], "hardest": [...]}``, patch indices, best first.
    """
    if analysis.n_patches == 0:
        return {"top attention": [], "hardest": []}
    top = np.argsort(-analysis.attention, kind="stable")[:k]
    hard_scores = np.where(analysis.masked, -np.inf, analysis.hard_attention)
    hard = [i for i in np.argsort(-hard_scores, kind="stable")[:k] if np.isfinite(hard_scores[i])]
    return {"top attention": [int(i) for i in top], "hardest": [int(i) for i in hard]}


def patch_images_job(
    slide: Any, analysis: SlideAnalysis, icon_px: int = 96, k: int = 8
) -> Job[dict[str, list[tuple[str, float, float, np.ndarray]]]]:
    """Read the images of :func:`top_patches` at about ``icon_px`` pixels a side.

    Returns
    -------
    dict
        Per group, ``(score label, centre x, centre y, RGB image)`` of each patch, centres
        in level-0 pixels.
    """
    groups = top_patches(analysis, k)
    size = analysis.patch_size_level0
    level = slide.best_level_for_downsample(max(size / icon_px, 1.0))
    side = max(1, round(size / slide.downsamples[level]))
    n = sum(len(v) for v in groups.values())
    out: dict[str, list[tuple[str, float, float, np.ndarray]]] = {}
    done = 0
    for title, indices in groups.items():
        scores = analysis.attention if title == "top attention" else analysis.hard_attention
        out[title] = []
        for index in indices:
            yield Progress(done, n, "reading patches")
            x, y = (int(v) for v in analysis.coords[index])
            image = slide.read_region((x, y), level, (side, side))
            out[title].append((f"{scores[index]:.3g}", x + size / 2, y + size / 2, image))
            done += 1
    return out
