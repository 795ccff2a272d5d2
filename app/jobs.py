"""The job protocol, as the app's modules import it (defined in :mod:`slidescope.models.jobs`).

See :mod:`slidescope.models.jobs` for the protocol: a job is a generator that yields
:class:`Progress` and returns its result; closing it cancels it.
"""

from __future__ import annotations

from slidescope.models.jobs import Job, Progress, R, run_job, sub_job

__all__ = ["Job", "Progress", "R", "run_job", "sub_job"]
