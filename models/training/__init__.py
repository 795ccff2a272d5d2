"""Training, evaluation and cross-validation of MIL models (plain, MHIM-MIL, AEM, survival).

Each long task is a job: a generator yielding :class:`Progress` and returning its
result, so the CLI, the desktop UI and scripts drive the same code::

    from slidescope.models.training import TrainingConfig, train
    job = train(TrainingConfig(features="features/", labels="labels.csv", out="m.safetensors"))
    for step in job: ...        # or slidescope.app.jobs.run_job(job)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slidescope.models.jobs import Progress
    from slidescope.models.training.config import MHIMConfig, TrainingConfig, TrainingConfigError
    from slidescope.models.training.crossval import CrossValidationResult, cross_validate
    from slidescope.models.training.evaluate import EvaluationResult, evaluate
    from slidescope.models.training.trainer import TrainingResult, train

#: name -> the module it comes from: imported on first use, so that a light submodule
#: (``finetune_settings``, ``config``) does not bring torch with the package (the window
#: starts without it)
_FROM = {
    "Progress": "slidescope.models.jobs",
    "MHIMConfig": "slidescope.models.training.config",
    "TrainingConfig": "slidescope.models.training.config",
    "TrainingConfigError": "slidescope.models.training.config",
    "CrossValidationResult": "slidescope.models.training.crossval",
    "cross_validate": "slidescope.models.training.crossval",
    "EvaluationResult": "slidescope.models.training.evaluate",
    "evaluate": "slidescope.models.training.evaluate",
    "TrainingResult": "slidescope.models.training.trainer",
    "train": "slidescope.models.training.trainer",
}

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


def __getattr__(name: str) -> Any:
    if name not in _FROM:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_FROM[name]), name)
    globals()[name] = value
    return value
