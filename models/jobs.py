"""The job protocol: every long task of the core is a plain generator.

It lives in ``slidescope.models`` so that training jobs (torch-only, which may not import
``slidescope.app``) yield the same :class:`Progress` as every other job;
``slidescope.app.jobs`` re-exports it for the rest of the program.

A job is a generator that yields :class:`Progress` and returns its result. It holds no
thread, no Qt object and no callback, so every face can drive it:

- the CLI iterates it under a progress bar (:func:`run_job` with ``on_progress``);
- the desktop UI and the napari plugin hand it to a napari ``thread_worker``, whose
  ``yielded`` signal receives each :class:`Progress` and whose ``quit()`` cancels it;
- batch runs call :func:`run_job` inside a Dask task.

Cancelling is closing the generator (``job.close()``): Python raises ``GeneratorExit``
at the ``yield`` where the job stands, so its ``finally`` blocks and context managers
clean up, and nothing half-written is left looking finished. A job that needs to
release resources on cancel does it in ``finally``, never by polling a flag.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any, TypeVar

R = TypeVar("R")


@dataclass(frozen=True)
class Progress:
    """One step of a job.

    Parameters
    ----------
    done : int
        Units finished so far (tiles, patches, slides, epochs, ...).
    total : int or None
        Units in all, when known.
    what : str
        A short, human-readable description of the current step.
    metrics : dict
        Figures a face may plot, e.g. a training epoch's ``train_loss`` and ``val_metric``.
    """

    done: int
    total: int | None
    what: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """Share done in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.done / self.total)


Job = Generator[Progress, None, R]
"""A long task: yields :class:`Progress`, returns its result."""


def run_job(job: Job[R], on_progress: Callable[[Progress], None] | None = None) -> R:
    """Drive a job to its end and return its result.

    Parameters
    ----------
    job : Job
        The generator to run.
    on_progress : callable, optional
        Called with every :class:`Progress` the job yields. To cancel a job, close the
        generator (``job.close()``): its cleanup runs where it stands.

    Returns
    -------
    The job's return value.
    """
    try:
        while True:
            progress = next(job)
            if on_progress is not None:
                on_progress(progress)
    except StopIteration as stop:
        return stop.value


def sub_job(
    job: Job[R],
    offset: int,
    total: int | None,
    prefix: str = "",
    *,
    same_units: bool = True,
) -> Job[R]:
    """Re-express a nested job's progress in the units of an enclosing one.

    ``result = yield from sub_job(inner, offset=k, total=n, prefix="slide 3: ")`` forwards
    the inner job's steps as ``offset + done`` of ``total`` (never past ``total``), with
    their metrics, so a batch of jobs shows one progress bar. When the inner job counts
    other units than the outer one (patches of a slide inside a count of slides), pass
    ``same_units=False``: the outer count stays at ``offset`` and the inner count is
    shown in the step's text. Closing the outer job closes the inner one.
    """
    try:
        while True:
            step = next(job)
            if same_units:
                done = offset + step.done
                if total is not None:
                    done = min(done, total)
                what = prefix + step.what
            else:
                done = offset
                what = prefix + step.what + (f" {step.done}/{step.total}" if step.total else "")
            yield Progress(done, total, what, step.metrics)
    except StopIteration as stop:
        return stop.value
    finally:
        job.close()
