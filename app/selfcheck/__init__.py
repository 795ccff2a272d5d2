"""The installation self-check: the demo slide, the demo model, one exported heatmap.

A job like every other long task (see :mod:`slidescope.models.jobs`); the CLI's
``self-check`` command prints its report. Nothing here needs Qt, a screen or the network.
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from slidescope.app.jobs import Job, Progress


@dataclass
class SelfCheckReport:
    """What the self-check did: one ``(step, detail)`` pair per finished step."""

    steps: list[tuple[str, str]] = field(default_factory=list)
    ok: bool = False

    def lines(self) -> list[str]:
        """The report as lines for a terminal."""
        rows = [f"  {step}: {detail}" for step, detail in self.steps]
        verdict = "self-check passed" if self.ok else "self-check FAILED"
        return [*rows, verdict]


def self_check(out_dir: str | Path | None = None) -> Job[SelfCheckReport]:
    """Open the demo slide (made on first run), analyse it with the demo model, export a PNG.

    Parameters
    ----------
    out_dir : path, optional
        Where the heatmap is written; ``<user cache>/self-check`` by default.

    Returns
    -------
    SelfCheckReport
        ``ok`` is True only when a non-empty heatmap PNG was written and the model's
        prediction is a finite probability.
    """
    from slidescope.app.analysis.inference import analyze_slide
    from slidescope.app.demo.demo_slide import ensure_demo_slide
    from slidescope.app.export.slide_export import ExportOptions, export_analysis
    from slidescope.app.slides import open_slide
    from slidescope.app.user_dirs import user_cache_dir
    from slidescope.resources import resource_path

    report = SelfCheckReport()
    import torch

    report.steps.append(
        (
            "runtime",
            f"Python {platform.python_version()} ({sys.executable}), torch {torch.__version__}",
        )
    )
    cache = user_cache_dir()
    started = time.perf_counter()
    slide_path = yield from ensure_demo_slide(cache / "demo")
    report.steps.append(("demo slide", f"{slide_path} ({time.perf_counter() - started:.1f} s)"))

    checkpoint = resource_path("demo_model.safetensors")
    started = time.perf_counter()
    analysis = yield from analyze_slide(slide_path, checkpoint, cache / "self-check-cache")
    probabilities = analysis.probabilities
    predicted = analysis.class_names[int(probabilities.argmax())]
    report.steps.append(
        (
            "demo model",
            f"{len(analysis.coords)} patches, predicted {predicted!r} "
            f"(p = {float(probabilities.max()):.3f}) in {time.perf_counter() - started:.1f} s",
        )
    )

    yield Progress(0, None, "exporting the attention heatmap")
    out = Path(out_dir) if out_dir is not None else cache / "self-check"
    with open_slide(slide_path) as slide:
        thumbnail = slide.thumbnail(512)
    files = export_analysis(
        analysis,
        thumbnail,
        out,
        ExportOptions(kinds=("attention",), overlay_format="none", thumbnail_size=512),
    )
    pngs = [p for p in files if p.suffix == ".png" and p.stat().st_size > 0]
    report.steps.append(("heatmap", ", ".join(str(p) for p in pngs) or "none written"))
    report.ok = bool(pngs) and bool(np.isfinite(probabilities).all())
    return report
