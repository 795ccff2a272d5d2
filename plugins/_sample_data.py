"""The sample-data contribution: the demo slide, made in the user's cache on first use."""

from __future__ import annotations

from typing import Any

from slidescope.app.demo import demo_slide as demo
from slidescope.app.jobs import run_job
from slidescope.app.user_dirs import user_cache_dir
from slidescope.plugins._reader import read_slides


def demo_slide() -> list[tuple[Any, dict[str, Any], str]]:
    """File > Open Sample > SlideScope demo slide (a few seconds the first time, then instant)."""
    path = run_job(
        demo.ensure_demo_slide(
            user_cache_dir() / "samples", demo.SAMPLE_WIDTH, demo.SAMPLE_HEIGHT, demo.SAMPLE_SEED
        )
    )
    return read_slides(str(path))
