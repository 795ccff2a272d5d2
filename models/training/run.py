"""One training run's moving parts, and what happens in an epoch and after it.

:class:`Run` holds what :func:`slidescope.models.training.trainer.fit` sets up (model,
teacher, optimiser, schedules, generators) and the selection state (history, best epoch
so far). :func:`run_epoch` trains one pass over the training bags, :func:`validate`
scores the validation bags, and :func:`select` decides whether the epoch is the one to
keep and whether to stop. Each is short enough to read at once, and the state is plain
enough to be saved after every epoch (:mod:`slidescope.models.training.resume`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from slidescope.models.errors import ModelError
from slidescope.models.jobs import Job, Progress
from slidescope.models.mil.base import MILModel
from slidescope.models.training.config import TrainingConfig
from slidescope.models.training.data import TrainingSet
from slidescope.models.training.metrics import balanced_accuracy, concordance_index, roc_auc
from slidescope.models.training.predict import predict_logits, softmax, survival_risk_np
from slidescope.models.training.recycle import GlobalRecycle
from slidescope.models.training.steps import BagTarget, LossSettings, mhim_step, plain_step
from slidescope.models.training.teacher import ema_update


class TrainingDivergedError(ModelError):
    """The loss or the predictions became NaN or infinite: no model is saved."""


@dataclass
class Run:
    """A training run in progress (see the module docstring)."""

    config: TrainingConfig
    training_set: TrainingSet
    device: torch.device
    targets: np.ndarray
    class_names: list[str]
    survival_edges: list[float] | None
    model: MILModel
    teacher: MILModel | None
    recycle: GlobalRecycle | None
    optimiser: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    settings: LossSettings
    mask_high: list[float]
    momentum: list[float]
    warmup_mhim: int
    order_generator: torch.Generator
    mask_generator: torch.Generator
    feature_stats: dict[str, Any] = field(default_factory=dict)
    fingerprint: str = ""
    history: list[dict[str, Any]] = field(default_factory=list)
    best_score: tuple[float, float] | None = None
    best_state: dict[str, Any] = field(default_factory=dict)
    best_figures: dict[str, float] = field(default_factory=dict)
    best_epoch: int = 0
    stale: int = 0
    step: int = 0
    epoch: int = 0

    @property
    def total_steps(self) -> int:
        return self.config.epochs * len(self.training_set.train_rows)


def _epoch_order(run: Run) -> list[int]:
    rows = run.training_set.train_rows
    balance = run.config.balance if run.training_set.table.task == "classification" else "none"
    if balance == "sampling":
        counts = np.bincount(run.targets[rows])
        weights = torch.tensor(1.0 / counts[run.targets[rows]], dtype=torch.float64)
        draw = torch.multinomial(
            weights, len(rows), replacement=True, generator=run.order_generator
        )
        return [int(rows[i]) for i in draw]
    return [int(rows[i]) for i in torch.randperm(len(rows), generator=run.order_generator)]


def _bag_loss(run: Run, row: int) -> torch.Tensor:
    config, table = run.config, run.training_set.table
    x = run.training_set.bags[row]
    if config.max_instances and x.shape[0] > config.max_instances:
        keep = torch.randperm(x.shape[0], generator=run.mask_generator)
        x = x[keep[: config.max_instances].sort().values]
    x = x.to(run.device)
    event = int(table.events[row]) if table.task == "survival" else 1
    target = BagTarget(int(run.targets[row]), event)
    index = run.step - run.warmup_mhim * len(run.training_set.train_rows)
    if run.teacher is not None and index >= 0:
        loss, _ = mhim_step(
            run.model, run.teacher, run.recycle, x, target, run.settings, config.mhim,
            run.mask_high[index], run.mask_generator,
        )  # fmt: skip
        return loss
    return plain_step(run.model, x, target, run.settings)[0]


def run_epoch(run: Run) -> Job[float]:
    """Train one pass over the training bags; returns the mean training loss."""
    epoch, losses = run.epoch + 1, []
    for row in _epoch_order(run):
        loss = _bag_loss(run, row)
        if not torch.isfinite(loss):
            raise TrainingDivergedError(
                f"{run.config.out}: training diverged at epoch {epoch} on slide "
                f"{run.training_set.table.slide_ids[row]} (loss {float(loss.detach())}); no model was "
                "saved. Lower --lr, or check that slide's features"
            )
        run.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        run.optimiser.step()
        run.scheduler.step()
        if run.teacher is not None:
            index = run.step - run.warmup_mhim * len(run.training_set.train_rows)
            # During a self warm-up the teacher simply follows the student (momentum 0).
            ema_update(run.teacher, run.model, run.momentum[index] if index >= 0 else 0.0)
        losses.append(float(loss.detach()))
        run.step += 1
        yield Progress(run.step, run.total_steps, f"epoch {epoch}/{run.config.epochs}")
    return float(np.mean(losses))


def validation_figures(
    training_set: TrainingSet, logits: np.ndarray, rows: np.ndarray, targets: np.ndarray
) -> dict[str, float]:
    """Validation figures: ``val_auc`` / ``val_balanced_accuracy`` / ``val_c_index``,
    ``val_accuracy``, ``val_loss``, and ``val_metric`` (the automatic choice)."""
    table = training_set.table
    if table.task == "survival":
        risk = survival_risk_np(logits)
        c_index = concordance_index(table.times[rows], table.events[rows], risk)
        return {"val_c_index": c_index, "val_metric": c_index}
    y = targets[rows]
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item())
    probs = softmax(logits)
    figures = {
        "val_loss": loss,
        "val_accuracy": float(np.mean(probs.argmax(axis=1) == y)),
        "val_balanced_accuracy": balanced_accuracy(y, probs.argmax(axis=1)),
    }
    if probs.shape[1] == 2:
        figures["val_auc"] = roc_auc(y, probs)
        figures["val_metric"] = figures["val_auc"]
    else:
        figures["val_metric"] = figures["val_balanced_accuracy"]
    return figures


def validate(run: Run, train_loss: float) -> dict[str, float]:
    """Score the validation bags after an epoch; NaN predictions fail the run."""
    rows = run.training_set.val_rows
    logits = predict_logits(run.model, run.training_set.bags, rows, run.device)
    if not np.all(np.isfinite(logits)):
        raise TrainingDivergedError(
            f"{run.config.out}: the model's outputs became NaN or infinite at epoch "
            f"{run.epoch + 1}; no model was saved. Lower --lr"
        )
    figures = validation_figures(run.training_set, logits, rows, run.targets)
    figures.update(epoch=run.epoch + 1, train_loss=train_loss)
    return figures


def selection_score(figures: dict[str, float], metric: str) -> tuple[float, float]:
    """Higher is better: the selection metric, then the lower loss as a tie-break (a
    validation AUC of 1.0 is reached early on easy data; the loss keeps improving)."""
    loss = figures.get("val_loss", 0.0)
    if metric == "loss":
        value = -loss
    else:
        value = figures.get("val_metric" if metric == "auto" else f"val_{metric}", math.nan)
    return (-math.inf if math.isnan(value) else value, -loss)


def select(run: Run, figures: dict[str, float]) -> bool:
    """Record the finished epoch; keep it if it is the best so far; True to stop.

    An epoch is selectable once masking has started (a self warm-up only prepares the
    teacher) and from ``min_epochs`` on: a model a few epochs into MHIM is close to its
    plain start, and would undo what masking teaches. Patience counts selectable epochs
    only. ``stop_epoch`` (the reference's) delays the stop without limiting the choice:
    the reference stops once its 0-based epoch index exceeds it.
    """
    config = run.config
    run.epoch += 1
    run.history.append(figures)
    score = selection_score(figures, config.selection_metric)
    selectable = run.epoch > run.warmup_mhim and run.epoch >= config.min_epochs
    if selectable and (run.best_score is None or score > run.best_score):
        run.best_score, run.best_epoch, run.stale = score, run.epoch, 0
        run.best_figures = dict(figures)
        run.best_state = {
            "model": copy.deepcopy(run.model.state_dict()),
            "teacher": copy.deepcopy(run.teacher.state_dict()) if run.teacher else None,
        }
    elif selectable:
        run.stale += 1
    may_stop = selectable and (config.stop_epoch is None or run.epoch - 1 > config.stop_epoch)
    return bool(config.patience and run.stale >= config.patience and may_stop)
