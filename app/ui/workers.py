"""Core jobs in napari ``thread_worker``s: progress in a bar, cancel by a button, errors shown.

A core job (:mod:`slidescope.app.jobs`) is a generator of :class:`Progress`. Here it runs in
a superqt ``GeneratorWorker``; every :class:`Progress` reaches the UI thread through the
``yielded`` signal; the Cancel button calls ``worker.quit()`` and the job is closed in its
own thread, so its ``finally`` clean-up runs where it was working. A
:class:`~slidescope.app.errors.SlideScopeError` becomes an error notification; any other
exception too, with its type, so the window never dies of a job.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from napari.qt.threading import GeneratorWorker, create_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtCore import Qt
from slidescope.app.errors import SlideScopeError
from slidescope.app.jobs import Job, Progress
from slidescope.app.ui.widgets.job_progress import JobProgress
from slidescope.models.errors import ModelError


def start_job(
    job: Job[Any],
    title: str,
    progress: JobProgress | None = None,
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    on_cancel: Callable[[], None] | None = None,
    on_finished: Callable[[], None] | None = None,
) -> GeneratorWorker:
    """Run ``job`` in a background thread and return its (started) worker.

    Parameters
    ----------
    job : Job
        The core job (a generator of :class:`Progress` returning its result).
    title : str
        What the progress line says, e.g. ``"Opening slide.svs"``.
    progress : JobProgress, optional
        Where to show a progress line with a Cancel button.
    on_done : callable, optional
        Called in the UI thread with the job's result.
    on_error : callable, optional
        Called in the UI thread with the exception; by default an error notification
        naming ``title`` is shown.
    on_cancel : callable, optional
        Called in the UI thread once a cancelled job has cleaned up.
    on_finished : callable, optional
        Called in the UI thread when the worker is done, whatever the outcome (connected
        before the worker starts: a quick job may finish before this function returns).
    """

    def drive() -> Generator[Progress, None, Any]:
        # errors come back as a value, not through ``errored``: napari 0.9.2 connects a
        # task-status handler to ``errored`` that itself raises (wrong arity) in the UI thread
        try:
            return (yield from job)
        except Exception as error:
            return _Failed(error)

    def close_job() -> None:
        job.close()

    def returned(value: Any) -> None:
        if isinstance(value, _Failed):
            (on_error or default_error)(value.error)
        elif on_done is not None:
            on_done(value)

    def default_error(error: BaseException) -> None:
        show_error(describe_error(title, error))

    worker = create_worker(drive, _start_thread=False)
    # quit() stops the loop between two steps; close the job right there, in the worker
    # thread, so that its clean-up runs before the thread is given back
    worker.aborted.connect(close_job, Qt.ConnectionType.DirectConnection)
    row = progress.add(title, worker) if progress is not None else None
    if row is not None:
        worker.yielded.connect(row.show_progress)
        worker.finished.connect(lambda: progress.remove(worker))  # type: ignore[union-attr]
    worker.returned.connect(returned)
    worker.aborted.connect(on_cancel or (lambda: show_info(f"{title}: cancelled")))
    if on_finished is not None:
        worker.finished.connect(on_finished)
    worker.start()
    return worker


class _Failed:
    """A job's exception, carried out of the worker as its result."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def describe_error(title: str, error: BaseException) -> str:
    """A notification's text: the user's errors as they are, others with their type."""
    if isinstance(error, (SlideScopeError, ModelError)):
        return f"{title}: {error}"
    return f"{title} failed: {type(error).__name__}: {error}"
