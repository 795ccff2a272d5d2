"""Training as a job: a generator that yields progress per bag and returns the result.

``train(config)`` reads the labels and features, fits the input standardisation, trains
the student (plain or MHIM, optionally with AEM) with AdamW under a cosine learning rate,
validates after every epoch, stops early on the validation metric (AUC for two
classes, balanced accuracy for more, c-index for survival), restores the best epoch,
picks the decision threshold on the validation slides (Youden's J) and saves the
checkpoint (the MHIM teacher beside the student).

Determinism: for a seed on CPU, two runs give identical weights: torch's global RNG
(dropout) is seeded, bag order and masks come from seeded generators, and deterministic
algorithms are switched on for the run (and restored afterwards).
"""

from __future__ import annotations

import contextlib
import copy
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from slidescope.models.devices import resolve_device
from slidescope.models.features import FeatureMoments
from slidescope.models.jobs import Job, Progress
from slidescope.models.mil.base import MILModel
from slidescope.models.mil.registry import create_model
from slidescope.models.training.config import TrainingConfig, TrainingConfigError
from slidescope.models.training.data import TrainingSet, load_training_set, survival_targets
from slidescope.models.training.masking import cosine_schedule
from slidescope.models.training.metrics import (
    balanced_accuracy,
    concordance_index,
    roc_auc,
    youden_threshold,
)
from slidescope.models.training.predict import predict_logits, softmax, survival_risk_np
from slidescope.models.training.recycle import GlobalRecycle
from slidescope.models.training.saving import load_teacher_init, save_trained
from slidescope.models.training.steps import BagTarget, LossSettings, mhim_step, plain_step
from slidescope.models.training.teacher import ema_update, make_teacher, momentum_schedule

TrainingJob = Job["TrainingResult"]


@dataclass
class TrainingResult:
    """What a finished training run gives back.

    Attributes
    ----------
    path : Path
        The saved checkpoint.
    metrics : dict
        Validation figures of the best epoch (``val_auc`` / ``val_balanced_accuracy`` /
        ``val_c_index``, ``val_loss``, ``best_epoch``, ``epochs_run``).
    threshold : float or None
        Decision threshold on the positive-class probability (two classes only).
    history : list of dict
        Per-epoch figures.
    """

    path: Path
    metrics: dict[str, float]
    threshold: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    val_slide_ids: list[str] = field(default_factory=list)


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and switch on deterministic algorithms for the block."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous, warn_only=previous_warn)


def safe_std(std: np.ndarray) -> np.ndarray:
    """Standard deviations safe to divide by.

    A feature constant on the training set (dead ReLU units of CNN features are common)
    gets 1 rather than ~0: dividing by ~0 would blow up any variation it shows on new
    slides. Near-constant features are floored at 1 % of the median spread for the same
    reason.
    """
    std = np.asarray(std, dtype=np.float32).copy()
    positive = std[std > 0]
    if positive.size:
        floor = np.float32(1e-2 * np.median(positive))
        std = np.where(std > 0, np.maximum(std, floor), np.float32(1.0))
    else:
        std[:] = 1.0
    return std.astype(np.float32)


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    # Cosine to 1 % of the base rate rather than 0, so late epochs still learn a little.
    return 0.01 + 0.99 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _class_weights(targets: np.ndarray, n_classes: int) -> torch.Tensor:
    counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
    weights = len(targets) / (n_classes * np.maximum(counts, 1.0))
    return torch.tensor(weights, dtype=torch.float32)


def _epoch_order(
    targets: np.ndarray, rows: np.ndarray, balance: str, generator: torch.Generator
) -> list[int]:
    if balance == "sampling":
        counts = np.bincount(targets[rows])
        weights = torch.tensor(1.0 / counts[targets[rows]], dtype=torch.float64)
        draw = torch.multinomial(weights, len(rows), replacement=True, generator=generator)
        return [int(rows[i]) for i in draw]
    return [int(rows[i]) for i in torch.randperm(len(rows), generator=generator)]


def validation_figures(
    training_set: TrainingSet, logits: np.ndarray, rows: np.ndarray, targets: np.ndarray
) -> dict[str, float]:
    """The validation metric (``val_metric``) and its named form, plus the loss."""
    table = training_set.table
    if table.task == "survival":
        risk = survival_risk_np(logits)
        c_index = concordance_index(table.times[rows], table.events[rows], risk)
        return {"val_c_index": c_index, "val_metric": c_index}
    y = targets[rows]
    loss = float(F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(y)).item())
    probs = softmax(logits)
    if probs.shape[1] == 2:
        auc = roc_auc(y, probs)
        return {"val_auc": auc, "val_loss": loss, "val_metric": auc}
    bacc = balanced_accuracy(y, probs.argmax(axis=1))
    return {"val_balanced_accuracy": bacc, "val_loss": loss, "val_metric": bacc}


def _score(figures: dict[str, float]) -> tuple[float, float]:
    # Higher is better: the metric first, then the lower loss as a tie-break (a
    # validation AUC of 1.0 is reached early on easy data; the loss keeps improving).
    metric = figures["val_metric"]
    return (-math.inf if math.isnan(metric) else metric, -figures.get("val_loss", 0.0))


def train(config: TrainingConfig) -> TrainingJob:
    """Train a model as described by ``config``; a job yielding :class:`Progress`.

    Returns
    -------
    TrainingResult
        (the generator's return value).
    """
    config.validate()
    training_set = load_training_set(config)
    return (yield from fit(config, training_set))


def fit(config: TrainingConfig, training_set: TrainingSet) -> TrainingJob:
    """Train on an already split :class:`TrainingSet` (used by cross-validation)."""
    config.validate()
    device = resolve_device(config.device)
    table = training_set.table
    survival_edges: list[float] | None = None
    if table.task == "survival":
        targets, survival_edges = survival_targets(training_set, config.survival_bins)
        n_outputs = config.survival_bins
        class_names = [f"time bin {i}" for i in range(n_outputs)]
    else:
        targets = table.targets
        n_outputs = len(table.class_names)
        class_names = list(table.class_names)
        if n_outputs < 2:
            raise TrainingConfigError(f"{table.path}: training needs at least two classes")
    train_rows, val_rows = training_set.train_rows, training_set.val_rows
    total_steps = config.epochs * len(train_rows)

    with deterministic(config.seed):
        moments = FeatureMoments()
        for i, row in enumerate(train_rows):
            # One step per file: a long pass over a large set stays cancellable.
            yield Progress(
                0, total_steps, f"input standardisation: slide {i + 1}/{len(train_rows)}"
            )
            moments.add_file(training_set.paths[int(row)])
        mean, std = moments.result()
        std = safe_std(std)
        model = create_model(
            config.model, training_set.reference.feature_dim, n_outputs, **config.model_kwargs
        )
        model.set_standardisation(torch.from_numpy(mean), torch.from_numpy(std))
        if config.teacher_init is not None:
            # As in the paper, the student starts from the plain-trained model too (its
            # own standardisation included: its weights were fitted under it).
            load_teacher_init(config.teacher_init, model)
        model.to(device).train()
        teacher: MILModel | None = None
        recycle: GlobalRecycle | None = None
        if config.method == "mhim":
            teacher = make_teacher(model)
            if config.mhim.recycle:
                recycle = GlobalRecycle(
                    model.hidden_dim,
                    config.mhim.recycle_tokens,
                    config.mhim.recycle_heads,
                    config.mhim.recycle_momentum,
                ).to(device)
        parameters = list(model.parameters()) + (
            list(recycle.parameters()) if recycle is not None else []
        )
        optimiser = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay)
        warmup = config.warmup_epochs * len(train_rows)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimiser, lambda s: _lr_factor(s, total_steps, warmup)
        )
        warmup_mhim = config.mhim_warmup_epochs()
        mhim_steps = total_steps - warmup_mhim * len(train_rows)
        mask_high = (
            cosine_schedule(config.mhim.mask_ratio_high, 0.0, mhim_steps)
            if config.mhim.mask_ratio_high_decay
            else [config.mhim.mask_ratio_high] * mhim_steps
        )
        momentum = momentum_schedule(config.mhim.momentum, config.mhim.momentum_final, mhim_steps)
        settings = LossSettings(
            task=table.task,
            class_weights=(
                _class_weights(targets[train_rows], n_outputs).to(device)
                if config.balance == "weights" and table.task == "classification"
                else None
            ),
            aem=config.aem,
            survival_alpha=config.survival_alpha,
        )
        order_generator = torch.Generator().manual_seed(config.seed)
        mask_generator = torch.Generator().manual_seed(config.seed + 1)
        events = table.events if table.task == "survival" else None
        balance = config.balance if table.task == "classification" else "none"

        history: list[dict[str, Any]] = []
        best: tuple[float, float] | None = None
        best_state: dict[str, Any] = {}
        best_figures: dict[str, float] = {}
        best_epoch = 0
        stale = 0
        step = 0
        for epoch in range(1, config.epochs + 1):
            losses = []
            for row in _epoch_order(targets, train_rows, balance, order_generator):
                x = training_set.bags[row]
                if config.max_instances and x.shape[0] > config.max_instances:
                    keep = torch.randperm(x.shape[0], generator=mask_generator)
                    x = x[keep[: config.max_instances].sort().values]
                x = x.to(device)
                target = BagTarget(
                    int(targets[row]), int(events[row]) if events is not None else 1
                )
                mhim_step_index = step - warmup_mhim * len(train_rows)
                if teacher is not None and mhim_step_index >= 0:
                    loss, _ = mhim_step(
                        model, teacher, recycle, x, target, settings, config.mhim,
                        mask_high[mhim_step_index], mask_generator,
                    )  # fmt: skip
                else:
                    loss, _ = plain_step(model, x, target, settings)
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                scheduler.step()
                if teacher is not None:
                    # During the plain warm-up the teacher simply follows the student, so
                    # MHIM starts from a teacher equal to the plain-trained model.
                    ema_update(
                        teacher, model, momentum[mhim_step_index] if mhim_step_index >= 0 else 0.0
                    )
                losses.append(float(loss.detach()))
                step += 1
                yield Progress(step, total_steps, f"epoch {epoch}/{config.epochs}")
            logits = predict_logits(model, training_set.bags, val_rows, device)
            figures = validation_figures(training_set, logits, val_rows, targets)
            figures.update(epoch=epoch, train_loss=float(np.mean(losses)))
            history.append(figures)
            score = _score(figures)
            # An MHIM model is one trained with masking: the plain warm-up epochs only prepare
            # the teacher and are never the model kept.
            selectable = epoch > warmup_mhim
            if selectable and (best is None or score > best):
                best, best_epoch, stale = score, epoch, 0
                best_figures = dict(figures)
                best_state = {
                    "model": copy.deepcopy(model.state_dict()),
                    "teacher": copy.deepcopy(teacher.state_dict()) if teacher else None,
                }
            elif selectable:
                stale += 1
            yield Progress(
                step,
                total_steps,
                f"epoch {epoch}/{config.epochs}: loss {figures['train_loss']:.3f}, "
                f"val {figures['val_metric']:.3f}",
                dict(figures),
            )
            # Never stop during MHIM's plain warm-up: masking has not started yet.
            if config.patience and stale >= config.patience and epoch > warmup_mhim:
                break

        model.load_state_dict(best_state["model"])
        if teacher is not None and best_state["teacher"] is not None:
            teacher.load_state_dict(best_state["teacher"])
        logits = predict_logits(model, training_set.bags, val_rows, device)
        threshold = None
        if table.task == "classification" and n_outputs == 2:
            threshold = youden_threshold(targets[val_rows] == 1, softmax(logits)[:, 1])
        metrics = {
            k: float(v) for k, v in best_figures.items() if k not in ("epoch", "val_metric")
        }
        metrics.update(best_epoch=float(best_epoch), epochs_run=float(len(history)))
        yield Progress(step, total_steps, f"saving {config.out.name}")
        path = save_trained(
            config,
            model.cpu(),
            teacher.cpu() if teacher is not None else None,
            training_set.reference,
            class_names,
            metrics,
            threshold,
            survival_edges,
        )
    return TrainingResult(
        path=path,
        metrics=metrics,
        threshold=threshold,
        history=history,
        val_slide_ids=[table.slide_ids[int(r)] for r in val_rows],
    )
