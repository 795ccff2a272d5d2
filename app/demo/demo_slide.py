"""The demo slide, made once per folder and reused (sample data, ``slidescope demo``)."""

from __future__ import annotations

from pathlib import Path

from slidescope.app.jobs import Job

SAMPLE_WIDTH = 6144
SAMPLE_HEIGHT = 4608
SAMPLE_SEED = 0


def demo_slide_path(folder: str | Path, width: int, height: int, seed: int) -> Path:
    """Where the demo slide of this size and seed lives in ``folder``."""
    return Path(folder) / f"demo-slide-s{seed}-{width}x{height}.tiff"


def ensure_demo_slide(
    folder: str | Path,
    width: int = SAMPLE_WIDTH,
    height: int = SAMPLE_HEIGHT,
    seed: int = SAMPLE_SEED,
) -> Job[Path]:
    """The demo slide in ``folder``: written on first use (a job), found afterwards.

    The generator writes beside and renames, so a file that exists is complete.
    """
    from slidescope.app.demo.generate import generate_demo_slide

    path = demo_slide_path(folder, width, height, seed)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    result = yield from generate_demo_slide(path, width=width, height=height, seed=seed)
    return Path(result.path)
