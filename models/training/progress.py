"""Progress of a training job, shaped like ``slidescope.app.jobs.Progress``.

``slidescope.models`` may not import ``slidescope.app``, so training jobs yield this
class: it has the same ``done``, ``total``, ``what`` and ``fraction``, which is all the
faces read (the CLI's progress bar, the UI's worker), plus the latest metrics so a face
can plot them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class TrainingProgress:
    """One step of a training job.

    Attributes
    ----------
    done, total : int
        Optimiser steps (bags) finished and planned.
    what : str
        A short description ("epoch 3/50: loss 0.41, val auc 0.93").
    metrics : dict
        The latest epoch's figures (``epoch``, ``train_loss``, ``val_loss``, ``val_metric``).
    """

    done: int
    total: int | None
    what: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def fraction(self) -> float | None:
        """Share done in [0, 1], or None when the total is unknown."""
        if not self.total:
            return None
        return min(1.0, self.done / self.total)
