"""Run a core job under a terminal progress bar."""

from __future__ import annotations

import sys
import time

from slidescope.app.jobs import Job, Progress, R, run_job
from tqdm import tqdm


def run_with_progress(job: Job[R], desc: str, quiet: bool = False) -> R:
    """Drive ``job`` to its end under a tqdm bar on stderr and return its result.

    Ctrl-C closes the job (its cleanup runs, nothing half-written looks finished) and
    re-raises ``KeyboardInterrupt`` for the CLI to exit with status 130.
    """
    bar = tqdm(desc=desc, disable=quiet or None, file=sys.stderr, dynamic_ncols=True, leave=True)
    start = time.perf_counter()

    def show(step: Progress) -> None:
        if step.total is not None and bar.total != step.total:
            bar.total = step.total
        bar.n = step.done
        what = step.what
        if "patches" in step.metrics:  # a batch over slides: show the patch rate too
            rate = step.metrics["patches"] / max(time.perf_counter() - start, 1e-9)
            what = f"{rate:.0f} patches/s, {what}"
        bar.set_postfix_str(what, refresh=False)
        bar.refresh()

    try:
        return run_job(job, on_progress=show)
    except KeyboardInterrupt:
        job.close()
        raise
    finally:
        bar.close()
