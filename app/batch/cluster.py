"""Dask plumbing: reach a scheduler (or start a quiet local cluster), prepare its workers.

Kept apart from the batch logic so the rules live in one place: a scheduler that cannot be
reached is one :class:`SchedulerUnreachableError` within ``CONNECT_TIMEOUT_S``; a local
cluster is closed client first, then the cluster, with workers given time to leave (no
nanny warnings on a clean run); distributed's own log lines are kept to errors.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from slidescope.app.errors import SlideScopeError

#: seconds to wait for a scheduler before saying it cannot be reached
CONNECT_TIMEOUT_S = 8.0
#: what every worker imports before its first task (a cold import costs seconds per task)
WARM_MODULES: tuple[str, ...] = (
    "torch",
    "slidescope.app.analysis.extract",
    "slidescope.app.analysis.inference",
    "slidescope.app.export.slide_export",
    "slidescope.app.batch.tasks",
)
_QUIET_LOGGERS = ("distributed", "tornado", "bokeh")


class SchedulerUnreachableError(SlideScopeError):
    """The Dask scheduler named by ``--scheduler`` does not answer."""


def warm_up(modules: Sequence[str] = WARM_MODULES, torch_threads: int | None = None) -> None:
    """Import what slide tasks need, once per worker process, before the first task."""
    for name in modules:
        importlib.import_module(name)
    if torch_threads is not None:
        import torch

        torch.set_num_threads(max(1, torch_threads))


@contextlib.contextmanager
def quiet_distributed() -> Iterator[None]:
    """Keep distributed's log lines (startup, shutdown chatter) to errors while inside."""
    loggers = [logging.getLogger(name) for name in _QUIET_LOGGERS]
    levels = [log.level for log in loggers]
    for log in loggers:
        log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels):
            log.setLevel(level)


def connect(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address``, or a one-line error.

    Raises
    ------
    SchedulerUnreachableError
        Nothing answered within ``timeout_s`` seconds, or the address is malformed.
    """
    from distributed import Client

    try:
        return Client(address, timeout=f"{timeout_s}s", set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise SchedulerUnreachableError(
            f"the Dask scheduler at {address} does not answer within {timeout_s:g} s "
            f"({reason}); start it with `dask scheduler` and check the address and port"
        ) from None


@contextlib.contextmanager
def local_cluster(workers: int, allowed_failures: int) -> Iterator[Any]:
    """A client of a local cluster of ``workers`` single-threaded processes, closed in order.

    ``allowed_failures`` bounds how often a task may be on a worker that dies before the
    scheduler gives up on it (``KilledWorker``).
    """
    import dask
    from distributed import Client, LocalCluster

    dashboard = ":0" if importlib.util.find_spec("bokeh") else None
    settings = {
        "distributed.scheduler.allowed-failures": allowed_failures,
        # one slide per worker thread at a time: a worker that dies takes down only the
        # slide it was running, and no queued slide is blamed for it
        "distributed.scheduler.worker-saturation": 1.0,
        # a worker busy in native code can take a while to leave; give it the time rather
        # than having the nanny kill it with a warning on every clean run
        "distributed.comm.timeouts.connect": "30s",
        "distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": 1,
    }
    with dask.config.set(settings):
        cluster = LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=dashboard,
            silence_logs=logging.ERROR,
        )
    client = Client(cluster, set_as_default=False)
    try:
        yield client
    finally:
        client.close()
        cluster.close(timeout=60)


def gpu_workers(client: Any) -> int:
    """Workers that declared a ``GPU`` resource (``dask worker --resources GPU=1``)."""
    workers = client.scheduler_info().get("workers", {})
    return sum(1 for info in workers.values() if info.get("resources", {}).get("GPU", 0) > 0)


def dashboard_of(client: Any) -> str:
    """Where the Dask dashboard is, or why there is none."""
    try:
        info = client.scheduler_info()
    except Exception:  # an old or odd scheduler: no dashboard to show
        return "not available"
    if "dashboard" not in info.get("services", {}):
        return "not available (install bokeh on the scheduler for one)"
    return str(client.dashboard_link)
