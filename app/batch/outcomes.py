"""What happened to each slide of a batch, and the summary every batch writes."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from slidescope.app.errors import SlideScopeError
from slidescope.app.slides.slide import slide_id_of
from slidescope.models.errors import ModelError
from slidescope.models.files import write_text_atomic

#: every status a slide can end a batch with
STATUSES: tuple[str, ...] = ("done", "skipped", "no tissue", "failed", "not run")


@dataclass
class SlideOutcome:
    """What happened to one slide of a batch.

    Attributes
    ----------
    slide, slide_id : str
        The slide's path and its id (file stem).
    status : str
        ``done`` (made in this run), ``skipped`` (complete before the run), ``no tissue``,
        ``failed`` or ``not run`` (the batch was interrupted first).
    error : str
        Why it failed, naming the slide.
    seconds : float
        Time spent on it, over all its attempts.
    attempts : int
        Executions it took; more than one means a worker died under it and it was retried.
    patches : int
        Patches of the slide (its bag size), when known.
    predicted_class : str or None
        The model's class (export only).
    files : list of str
        Files written for it.
    finished_at : float
        When its outputs were completed (epoch seconds; for a skipped slide, when the files
        it found were made), so a result re-made by a lost worker is not taken for one
        that was there before the run.
    """

    slide: str
    slide_id: str
    status: str
    error: str = ""
    seconds: float = 0.0
    attempts: int = 1
    patches: int = 0
    predicted_class: str | None = None
    files: list[str] = field(default_factory=list)
    finished_at: float = 0.0

    @property
    def retried(self) -> bool:
        return self.attempts > 1


def failed_outcome(slide: str, error: Exception, seconds: float) -> SlideOutcome:
    """The ``failed`` outcome of a slide whose task raised ``error``.

    A user error says what to do by itself; running out of memory is said plainly; anything
    else is named by its type. Every reason names its slide.
    """
    if isinstance(error, (SlideScopeError, ModelError)):
        reason = str(error)
    elif isinstance(error, MemoryError):
        reason = "not enough memory to read it"
    else:
        reason = f"{type(error).__name__}: {error}"
    if slide not in reason:
        reason = f"{slide}: {reason}"
    return SlideOutcome(slide, slide_id_of(slide), "failed", reason, seconds)


def count_outcomes(outcomes: Sequence[SlideOutcome]) -> dict[str, int]:
    """Slides per status, plus ``retried`` (slides executed more than once)."""
    counts = {s: sum(o.status == s for o in outcomes) for s in STATUSES}
    counts["retried"] = sum(o.retried for o in outcomes)
    return counts


def describe_counts(counts: dict[str, int]) -> str:
    """``3 done, 1 retried, 1 failed`` (zero counts left out)."""
    return ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "nothing to do"


def write_summary(
    out_dir: str | Path, outcomes: Sequence[SlideOutcome], *, interrupted: bool = False
) -> Path:
    """``summary.csv`` and ``summary.json`` in ``out_dir``, one row per slide, atomically.

    Returns the CSV's path.
    """
    out_dir = Path(out_dir)
    rows = [asdict(o) for o in outcomes]
    record = {"counts": count_outcomes(outcomes), "interrupted": interrupted, "slides": rows}
    write_text_atomic(out_dir / "summary.json", json.dumps(record, indent=1))
    buffer = io.StringIO()
    columns = [
        "slide", "slide_id", "status", "attempts", "patches", "predicted_class", "seconds", "error",
    ]  # fmt: skip
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({**row, "seconds": f"{row['seconds']:.2f}"})
    return write_text_atomic(out_dir / "summary.csv", buffer.getvalue())
