"""A tiny slide task for the runner's tests: real files, real crashes, no slide decoding.

A "slide" here is a small file; the task copies its text into ``<out>/<stem>.txt``. A file
that says ``abort`` makes the task's process abort (SIGABRT, as a native decoder does on a
damaged slide); one that says ``kill once`` kills its process the first time only (as a
worker lost to the out-of-memory killer), so a retry succeeds.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from slidescope.app.batch.outcomes import SlideOutcome
from slidescope.models.files import write_text_atomic


@dataclass(frozen=True)
class ToyTask:
    slide: str
    out_dir: str


def run_toy_task(task: ToyTask) -> SlideOutcome:
    path = Path(task.slide)
    text = path.read_text()
    out = Path(task.out_dir) / f"{path.stem}.txt"
    if out.exists():
        made = out.stat().st_mtime
        return SlideOutcome(task.slide, path.stem, "skipped", patches=len(text), finished_at=made)
    if text == "abort":
        os.abort()
    if text == "kill once":
        mark = path.with_suffix(".killed")
        if not mark.exists():
            mark.touch()
            os.kill(os.getpid(), signal.SIGKILL)
    write_text_atomic(out, text)
    return SlideOutcome(
        task.slide, path.stem, "done", patches=len(text), files=[out.name], finished_at=time.time()
    )


def toy_cohort(folder: Path, texts: dict[str, str]) -> list[ToyTask]:
    """Files named by ``texts``' keys, and one task per file writing into ``folder/out``."""
    out = folder / "out"
    out.mkdir(parents=True, exist_ok=True)
    tasks = []
    for name, text in texts.items():
        (folder / f"{name}.svs").write_text(text)
        tasks.append(ToyTask(str(folder / f"{name}.svs"), str(out)))
    return tasks
