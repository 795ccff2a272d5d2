"""The worker plugin that imports a slide task's code before the first task (Dask only)."""

from __future__ import annotations

from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin
from slidescope.app.batch.cluster import warm_up


class WarmUp(WorkerPlugin):  # type: ignore[misc]
    """Imports torch and the slide tasks' code on every worker, including later joiners.

    Parameters
    ----------
    torch_threads : int, optional
        Threads for torch on each worker (a local cluster shares this machine's cores).
    """

    def __init__(self, torch_threads: int | None) -> None:
        self.torch_threads = torch_threads

    def setup(self, worker: Any) -> None:
        warm_up(torch_threads=self.torch_threads)
