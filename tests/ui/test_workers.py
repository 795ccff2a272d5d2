"""Core jobs in the background: progress shown, Cancel closes the job, errors notified."""

from __future__ import annotations

import threading

from napari.utils.notifications import notification_manager
from qtpy.QtCore import Qt
from slidescope.app.errors import SlideScopeError
from slidescope.app.jobs import Progress
from slidescope.app.ui.widgets.job_progress import JobProgress
from slidescope.app.ui.workers import start_job


def test_progress_then_result(qtbot):
    progress = JobProgress()
    qtbot.addWidget(progress)
    results = []

    def job():
        for i in range(3):
            yield Progress(i, 3, f"step {i}")
        return "done"

    start_job(job(), "Counting", progress, on_done=results.append)
    assert progress.running == 1
    qtbot.waitUntil(lambda: results == ["done"], timeout=10_000)
    qtbot.waitUntil(lambda: progress.running == 0)


def test_cancel_button_closes_the_job_in_its_thread(qtbot):
    progress = JobProgress()
    qtbot.addWidget(progress)
    started = threading.Event()
    cleaned: list[str] = []
    cancelled: list[bool] = []

    def endless():
        try:
            i = 0
            while True:
                started.set()
                yield Progress(i, None, "working")
                i += 1
        finally:
            cleaned.append(threading.current_thread().name)

    worker = start_job(endless(), "Endless", progress, on_cancel=lambda: cancelled.append(True))
    qtbot.waitUntil(started.is_set, timeout=10_000)
    row = next(iter(progress._rows.values()))
    with qtbot.waitSignal(worker.finished, timeout=10_000):
        qtbot.mouseClick(row.cancel, Qt.MouseButton.LeftButton)
    assert cleaned
    assert cleaned[0] != threading.main_thread().name  # cleaned up where it worked
    qtbot.waitUntil(lambda: cancelled == [True])


def test_errors_become_notifications(qtbot):
    seen = []
    notification_manager.notification_ready.connect(seen.append)
    try:

        def failing():
            yield Progress(0, 1, "trying")
            raise SlideScopeError("slide.svs: no microns-per-pixel; pass --mpp")

        start_job(failing(), "Analysing slide.svs")
        qtbot.waitUntil(lambda: bool(seen), timeout=10_000)
    finally:
        notification_manager.notification_ready.disconnect(seen.append)
    assert seen[0].message == "Analysing slide.svs: slide.svs: no microns-per-pixel; pass --mpp"
