"""The worker plugin that imports a slide task's code before the first task (Dask only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from distributed.diagnostics.plugin import WorkerPlugin
from slidescope.app.batch.cluster import warm_up


class WarmUp(WorkerPlugin):
    """Imports torch and the slide tasks' code on every worker, including later joiners.

    Parameters
    ----------
    modules : sequence of str
        What to import.
    torch_threads : int, optional
        Threads for torch on each worker (a local cluster shares this machine's cores).
    """

    def __init__(self, modules: Sequence[str], torch_threads: int | None) -> None:
        self.modules = tuple(modules)
        self.torch_threads = torch_threads

    def setup(self, worker: Any) -> None:
        warm_up(self.modules, torch_threads=self.torch_threads)
