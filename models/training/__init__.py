"""Training, evaluation and cross-validation of MIL models (plain, MHIM-MIL, AEM, survival).

Each long task is a job: a generator yielding :class:`Progress` and returning its
result, so the CLI, the desktop UI and scripts drive the same code::

    from slidescope.models.training import TrainingConfig, train
    job = train(TrainingConfig(features="features/", labels="labels.csv", out="m.safetensors"))
    for step in job: ...        # or slidescope.app.jobs.run_job(job)
"""

from __future__ import annotations

from slidescope.models.jobs import Progress
from slidescope.models.training.config import MHIMConfig, TrainingConfig, TrainingConfigError
from slidescope.models.training.crossval import CrossValidationResult, cross_validate
from slidescope.models.training.evaluate import EvaluationResult, evaluate
from slidescope.models.training.trainer import TrainingResult, train

__all__ = [
    "CrossValidationResult",
    "EvaluationResult",
    "MHIMConfig",
    "Progress",
    "TrainingConfig",
    "TrainingConfigError",
    "TrainingResult",
    "cross_validate",
    "evaluate",
    "train",
]
