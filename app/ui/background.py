"""The background jobs of one session: started, counted, cancelled together."""

from __future__ import annotations

from typing import Any

from slidescope.app.jobs import Job
from slidescope.app.ui.widgets.job_progress import JobProgress
from slidescope.app.ui.workers import start_job


class BackgroundJobs:
    """Runs core jobs in workers with a progress line each (see :func:`start_job`).

    Parameters
    ----------
    progress : JobProgress, optional
        Where the progress lines go (the status bar in the window).
    """

    def __init__(self, progress: JobProgress | None = None) -> None:
        self.progress = progress
        self._workers: list[Any] = []

    def run(self, job: Job[Any], title: str, **handlers: Any) -> Any:
        """Start ``job``; returns its worker. ``handlers`` as for :func:`start_job`."""
        box: list[Any] = []  # the worker, for the callback made before it exists
        worker = start_job(
            job, title, self.progress, on_finished=lambda: self._workers.remove(box[0]), **handlers
        )
        box.append(worker)
        self._workers.append(worker)
        return worker

    @property
    def busy(self) -> bool:
        """Whether a job is running."""
        return bool(self._workers)

    def quit_all(self) -> None:
        """Ask every running job to stop (each closes in its own thread)."""
        for worker in list(self._workers):
            worker.quit()
