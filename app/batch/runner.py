"""The batch job: one task per slide, where a crash takes down nothing but that slide.

Three ways to run, one result:

- ``workers=0``: one slide after another in a child process. A slide whose native decoder
  crashes kills only that child; the slide is recorded as failed ("the decoder crashed
  (signal 6)") after a bounded number of tries, a fresh child takes the next slide.
- ``workers=N``: a local Dask cluster of N single-threaded worker processes.
- ``scheduler="tcp://host:8786"``: any running ``distributed`` scheduler.

On Dask a worker that dies mid-slide has its slide retried elsewhere by the scheduler; a
slide that keeps killing workers ends as ``KilledWorker``, recorded as failed with the
slide's name. Either way the slide's files are written atomically by whoever ran it, and the
client only moves task descriptions and :class:`SlideOutcome` records. ``summary.csv`` and
``summary.json`` are written at the end however the batch ends (error, Ctrl-C, cancel).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any, Protocol, TypeVar

from slidescope.app.batch.cluster import (
    WARM_MODULES,
    connect,
    dashboard_of,
    gpu_workers,
    local_cluster,
    quiet_distributed,
    warm_up,
)
from slidescope.app.batch.outcomes import SlideOutcome, write_summary
from slidescope.app.jobs import Job, Progress
from slidescope.app.slides.slide import slide_id_of
from slidescope.models.devices import usable_cores

#: executions of one slide before it is given up (a first try and one retry)
MAX_TRIES = 2
#: above this much estimated serial work (seconds) a local cluster pays for its start-up
CLUSTER_WORTH_S = 60.0
#: rough serial cost of one slide's patches: bytes on disk per patch, seconds per patch
_BYTES_PER_PATCH = 40_000
_SECONDS_PER_PATCH = 0.01


class SlideTask(Protocol):
    """What the runner needs of a task: the slide it is about (picklable, small)."""

    # read-only, so frozen dataclasses satisfy it
    @property
    def slide(self) -> str: ...


T = TypeVar("T", bound=SlideTask)


def choose_workers(slides: Sequence[str | Path], available_cores: int | None = None) -> int:
    """``--workers auto``: 0 (serial) unless the work in front of us pays for a cluster.

    The work is estimated from the slides' sizes on disk (compressed bytes per patch and a
    CPU cost per patch); a local cluster costs seconds to start and import on every worker,
    so it is chosen only for more than one slide, more than one core, and more than
    :data:`CLUSTER_WORTH_S` of estimated serial work; then one worker per core, at most
    one per slide.
    """
    available = available_cores or usable_cores()
    if len(slides) < 2 or available < 2:
        return 0
    size = 0
    for slide in slides:
        path = Path(slide)
        with contextlib.suppress(OSError):
            size += (
                sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
                if path.is_dir()
                else path.stat().st_size
            )
    serial_s = size / _BYTES_PER_PATCH * _SECONDS_PER_PATCH
    return min(available, len(slides)) if serial_s > CLUSTER_WORTH_S else 0


def run_batch(
    tasks: Sequence[T],
    run_task: Callable[[T], SlideOutcome],
    out_dir: str | Path,
    *,
    workers: int = 0,
    scheduler: str | None = None,
    gpu: bool = False,
    max_tries: int = MAX_TRIES,
    on_message: Callable[[str], None] | None = None,
    warm_modules: Sequence[str] = WARM_MODULES,
) -> Job[list[SlideOutcome]]:
    """Run ``run_task`` on every task; progress counts slides; the summary is always written.

    Parameters
    ----------
    tasks : sequence
        One picklable task per slide (it names its ``slide``).
    run_task : callable
        A module-level function ``task -> SlideOutcome`` that never raises for a slide's
        own problems (it records them in the outcome).
    out_dir : path
        Where ``summary.csv`` / ``summary.json`` go.
    workers : int
        0: serially in a child process; N: a local Dask cluster of N processes.
    scheduler : str, optional
        Address of a running Dask scheduler (overrides ``workers``).
    gpu : bool
        The tasks want a GPU: on a cluster whose workers declare ``GPU`` resources, each
        task holds one GPU while it runs; without such workers they run where they can.
    max_tries : int
        Executions of a slide before it is failed (local runs; a remote scheduler applies
        its own ``allowed-failures``).
    on_message : callable, optional
        Receives one-line notes for the user (the dashboard address, the mode).
    warm_modules : sequence of str
        What every worker process imports before its first task.

    Progress metrics carry ``patches`` (patches of the finished slides so far).
    """
    say = on_message or (lambda _message: None)
    outcomes: dict[int, SlideOutcome] = {}
    interrupted = True
    try:
        yield Progress(0, len(tasks), "starting", {"patches": 0})
        if scheduler is None and workers <= 0:
            runs = _in_child_process(tasks, run_task, max_tries, warm_modules)
        else:
            runs = _on_dask(tasks, run_task, workers, scheduler, gpu, max_tries, say, warm_modules)
        patches = 0
        started = time.time()
        for index, outcome in runs:
            if outcome.status == "skipped" and outcome.finished_at > started:
                # made in this run by an execution whose result was lost with its worker
                outcome.status = "done"
                outcome.attempts = max(outcome.attempts, 2)
            outcomes[index] = outcome
            patches += outcome.patches
            what = f"{outcome.slide_id}: {outcome.status}"
            yield Progress(len(outcomes), len(tasks), what, {"patches": patches})
        interrupted = False
    finally:
        result = [
            outcomes.get(i) or SlideOutcome(t.slide, slide_id_of(t.slide), "not run")
            for i, t in enumerate(tasks)
        ]
        write_summary(out_dir, result, interrupted=interrupted)
    return result


def _failed(task: SlideTask, reason: str, attempts: int, seconds: float) -> SlideOutcome:
    return SlideOutcome(
        task.slide, slide_id_of(task.slide), "failed", reason, seconds, attempts=attempts
    )


def _with_attempts(outcome: SlideOutcome, attempts: int) -> SlideOutcome:
    """An outcome of a slide executed ``attempts`` times.

    A killed attempt may have finished the files before dying: the retry then finds them
    complete, but they were made in this run, so the slide counts as done, not skipped.
    """
    outcome.attempts = attempts
    if attempts > 1 and outcome.status == "skipped":
        outcome.status = "done"
    return outcome


def _in_child_process(
    tasks: Sequence[T],
    run_task: Callable[[T], SlideOutcome],
    max_tries: int,
    warm_modules: Sequence[str],
) -> Iterator[tuple[int, SlideOutcome]]:
    """Each slide in a worker process, replaced when a slide's native code kills it."""
    context = multiprocessing.get_context("spawn")  # no fork of a process with torch threads
    pool: ProcessPoolExecutor | None = None
    try:
        for index, task in enumerate(tasks):
            start = time.perf_counter()
            for attempt in range(1, max_tries + 1):
                if pool is None:
                    pool = ProcessPoolExecutor(
                        1, mp_context=context, initializer=warm_up, initargs=(warm_modules,)
                    )
                future = pool.submit(run_task, task)
                children = list((getattr(pool, "_processes", None) or {}).values())
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    # the pool's own thread reaps the dead child: after shutdown() the
                    # child's exit code is set (reading it before races that thread's
                    # waitpid and may find nothing)
                    pool.shutdown(wait=True, cancel_futures=True)
                    pool = None
                    signal = _exit_signal(children)
                    if attempt < max_tries:
                        continue
                    reason = (
                        f"{task.slide}: the decoder crashed ({signal}) in {attempt} tries; "
                        "the file is probably damaged: check it with `slidescope info`"
                    )
                    outcome = _failed(task, reason, attempt, time.perf_counter() - start)
                else:
                    outcome = _with_attempts(outcome, attempt)
                    outcome.seconds = time.perf_counter() - start
                break
            yield index, outcome
        if pool is not None:
            pool.shutdown(wait=True)
            pool = None
    finally:
        if pool is not None:
            # Ctrl-C or close(): do not wait for the slide at work, its writes are atomic
            children = list((getattr(pool, "_processes", None) or {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for child in children:
                child.terminate()


def _exit_signal(children: Sequence[Any]) -> str:
    """``signal 6`` (SIGABRT), ``exit status 1``, ... of the child that died."""
    for child in children:
        child.join(timeout=10)
        code = child.exitcode
        if code is not None and code < 0:
            return f"signal {-code}"
        if code:
            return f"exit status {code}"
    return "the worker process died"


def _on_dask(
    tasks: Sequence[T],
    run_task: Callable[[T], SlideOutcome],
    workers: int,
    scheduler: str | None,
    gpu: bool,
    max_tries: int,
    say: Callable[[str], None],
    warm_modules: Sequence[str],
) -> Iterator[tuple[int, SlideOutcome]]:
    from distributed import KilledWorker, as_completed

    with contextlib.ExitStack() as stack:
        stack.enter_context(quiet_distributed())
        if scheduler is None:
            client = stack.enter_context(local_cluster(workers, allowed_failures=max_tries - 1))
            threads = max(1, usable_cores() // max(1, workers))
            say(f"local Dask cluster of {workers} worker process(es)")
        else:
            client = connect(scheduler)
            stack.callback(client.close)
            threads = None
            say(f"Dask scheduler {scheduler}")
        say(f"Dask dashboard: {dashboard_of(client)}")
        # every worker, including ones that join later, imports before its first task
        from slidescope.app.batch.warm import WarmUp

        client.register_plugin(WarmUp(warm_modules, threads), name="slidescope-warm-up")
        resources = {"GPU": 1} if gpu and gpu_workers(client) else None
        if gpu and resources:
            say(f"{gpu_workers(client)} GPU worker(s): one slide per GPU at a time")
        token = uuid.uuid4().hex[:8]
        keys = [f"slide-{i}-{slide_id_of(t.slide)}-{token}" for i, t in enumerate(tasks)]
        futures = client.map(run_task, list(tasks), key=keys, pure=False, resources=resources)
        stack.callback(client.cancel, futures)  # Ctrl-C drops the slides not started
        index_of = {f.key: i for i, f in enumerate(futures)}
        started = {f.key: time.perf_counter() for f in futures}
        # results are gathered as each slide finishes: an outcome held by a worker that
        # dies a moment later is not lost (and its slide not run twice)
        done = as_completed(futures, loop=client.loop, with_results=True, raise_errors=False)
        for future, result in done:
            index = index_of[future.key]
            task = tasks[index]
            if isinstance(result, tuple) and len(result) == 3:  # an error: (type, value, tb)
                result = result[1]
            if isinstance(result, KilledWorker):
                yield index, _failed(task, _killed_reason(task, result), max_tries, 0.0)
            elif isinstance(result, BaseException):  # the task raised: record it, go on
                reason = f"{task.slide}: {type(result).__name__}: {result}"
                yield index, _failed(task, reason, 1, time.perf_counter() - started[future.key])
            else:
                deaths = client.run_on_scheduler(_worker_deaths, key=future.key)
                yield index, _with_attempts(result, 1 + int(deaths))
            future.release()


def _killed_reason(task: SlideTask, error: Exception) -> str:
    return (
        f"{task.slide}: every worker that took this slide died under it (the decoder "
        f"crashed or ran out of memory); given up after the scheduler's allowed failures "
        f"({type(error).__name__})"
    )


def _worker_deaths(dask_scheduler: Any, key: str) -> int:
    """How many workers died while running ``key`` (run on the scheduler)."""
    state = dask_scheduler.tasks.get(key)
    return int(getattr(state, "suspicious", 0)) if state is not None else 0
