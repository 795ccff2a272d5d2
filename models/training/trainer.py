"""Training as a job: a generator that yields progress per bag and returns the result.

``train(config)`` reads the labels and features and calls :func:`fit`, which runs four
steps: :func:`set_up` (input standardisation, feature statistics, the model, the MHIM
teacher — a plain model trained first on the same training slides, as the paper — the
optimiser and schedules), then per epoch :func:`~slidescope.models.training.run.run_epoch`,
:func:`~slidescope.models.training.run.validate` and
:func:`~slidescope.models.training.run.select` (the kept epoch and early stopping), with
the run's state saved after every epoch so that a killed run continues where it was, and
finally :func:`finish` (restore the kept epoch, pick the decision threshold on the
validation slides (Youden's J), save the checkpoint with the teacher beside it).

Determinism: for a seed on CPU, two runs give identical weights — and so does a run
killed and resumed: torch's global RNG (dropout) is seeded and saved, bag order and
masks come from seeded generators, and deterministic algorithms are on for the run.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from slidescope.models.devices import gpu_memory_explained, resolve_device
from slidescope.models.jobs import Job, Progress
from slidescope.models.training.config import TrainingConfig, TrainingConfigError
from slidescope.models.training.data import TrainingSet, load_training_set
from slidescope.models.training.metrics import MIN_PER_CLASS, youden_threshold
from slidescope.models.training.predict import predict_logits, softmax
from slidescope.models.training.resume import clear_state, load_state, save_state
from slidescope.models.training.run import (
    Run,
    TrainingDivergedError,
    run_epoch,
    select,
    validate,
    validation_figures,
)
from slidescope.models.training.saving import save_trained
from slidescope.models.training.setup import set_up

TrainingJob = Job["TrainingResult"]
__all__ = [
    "TrainingDivergedError",
    "TrainingJob",
    "TrainingResult",
    "deterministic",
    "fit",
    "safe_std",
    "train",
    "validation_figures",
]


@dataclass
class TrainingResult:
    """What a finished training run gives back.

    Attributes
    ----------
    path : Path
        The saved checkpoint.
    metrics : dict
        Validation figures of the kept epoch (``val_auc`` / ``val_balanced_accuracy`` /
        ``val_c_index``, ``val_loss``, ``best_epoch``, ``epochs_run``).
    threshold : float or None
        Decision threshold on the positive-class probability (two classes only).
    history : list of dict
        Per-epoch figures.
    teacher_path : Path or None
        The plain model MHIM's teacher started from, when the run trained one.
    """

    path: Path
    metrics: dict[str, float]
    threshold: float | None
    history: list[dict[str, Any]] = field(default_factory=list)
    val_slide_ids: list[str] = field(default_factory=list)
    teacher_path: Path | None = None


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
    with deterministic(config.seed):
        run, teacher_path = yield from set_up(config, training_set, resolve_device(config.device))
        saved = load_state(config.out, run.fingerprint) if config.resume else None
        if saved is not None:
            restore(run, saved)
        while run.epoch < config.epochs:
            with gpu_memory_explained(
                f"training {config.model}",
                "cap the patches per bag (--max-instances) or train on the CPU (--device cpu)",
            ):
                train_loss = yield from run_epoch(run)
                figures = validate(run, train_loss)
            stop = select(run, figures)
            if config.resume:
                save_state(config.out, snapshot(run, stop))
            yield Progress(
                run.step,
                run.total_steps,
                f"epoch {run.epoch}/{config.epochs}: loss {train_loss:.3f}, "
                f"val {figures['val_metric']:.3f}",
                dict(figures),
            )
            if stop:
                break
        yield Progress(run.step, run.total_steps, f"saving {config.out.name}")
        result = finish(run)
    result.teacher_path = teacher_path
    clear_state(config.out)
    return result


def snapshot(run: Run, stopped: bool) -> dict[str, Any]:
    """Everything :func:`restore` needs to continue ``run`` after its last epoch."""
    return {
        "fingerprint": run.fingerprint,
        "stopped": stopped,
        "epoch": run.epoch,
        "step": run.step,
        "model": run.model.state_dict(),
        "teacher": run.teacher.state_dict() if run.teacher is not None else None,
        "recycle": run.recycle.state_dict() if run.recycle is not None else None,
        "optimiser": run.optimiser.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "order_generator": run.order_generator.get_state(),
        "mask_generator": run.mask_generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": run.history,
        "best_score": list(run.best_score) if run.best_score is not None else None,
        "best_state": run.best_state,
        "best_figures": run.best_figures,
        "best_epoch": run.best_epoch,
        "stale": run.stale,
    }


def restore(run: Run, state: dict[str, Any]) -> None:
    """Continue ``run`` from a :func:`snapshot` (the same run's: fingerprints match)."""
    run.model.load_state_dict(state["model"])
    if run.teacher is not None and state["teacher"] is not None:
        run.teacher.load_state_dict(state["teacher"])
    if run.recycle is not None and state["recycle"] is not None:
        run.recycle.load_state_dict(state["recycle"])
    run.optimiser.load_state_dict(state["optimiser"])
    run.scheduler.load_state_dict(state["scheduler"])
    run.order_generator.set_state(state["order_generator"])
    run.mask_generator.set_state(state["mask_generator"])
    torch.set_rng_state(state["torch_rng"])
    run.history = list(state["history"])
    best = state["best_score"]
    run.best_score = (float(best[0]), float(best[1])) if best is not None else None
    run.best_state = dict(state["best_state"])
    run.best_figures = dict(state["best_figures"])
    run.best_epoch, run.stale = int(state["best_epoch"]), int(state["stale"])
    run.epoch, run.step = int(state["epoch"]), int(state["step"])
    if state.get("stopped"):
        # The saved run had already stopped early: there is nothing left to train.
        run.epoch = run.config.epochs


def finish(run: Run) -> TrainingResult:
    """Restore the kept epoch, choose the threshold and save the checkpoint."""
    config, table = run.config, run.training_set.table
    if not run.best_state:
        raise TrainingConfigError(
            f"{config.out}: no epoch could be kept (min_epochs {config.min_epochs} of "
            f"{config.epochs})"
        )
    run.model.load_state_dict(run.best_state["model"])
    if run.teacher is not None and run.best_state["teacher"] is not None:
        run.teacher.load_state_dict(run.best_state["teacher"])
    for name, tensor in run.model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise TrainingDivergedError(
                f"{config.out}: weight {name} is NaN or infinite; no model was saved"
            )
    val_rows = run.training_set.val_rows
    logits = predict_logits(run.model, run.training_set.bags, val_rows, run.device)
    threshold = None
    if table.task == "classification" and len(run.class_names) == 2:
        threshold = youden_threshold(
            run.targets[val_rows] == 1, softmax(logits)[:, 1], min_per_class=MIN_PER_CLASS
        )
        if threshold is not None and not math.isfinite(threshold):
            raise TrainingDivergedError(f"{config.out}: the decision threshold is not finite")
    metrics = {
        k: float(v) for k, v in run.best_figures.items() if k not in ("epoch", "val_metric")
    }
    metrics.update(best_epoch=float(run.best_epoch), epochs_run=float(len(run.history)))
    path = save_trained(
        config,
        run.model.cpu(),
        run.teacher.cpu() if run.teacher is not None else None,
        run.training_set.reference,
        run.class_names,
        metrics,
        threshold,
        run.survival_edges,
        extra={
            "train_slide_ids": [table.slide_ids[int(r)] for r in run.training_set.train_rows],
            "val_slide_ids": [table.slide_ids[int(r)] for r in val_rows],
            "run_fingerprint": run.fingerprint,
        },
        feature_stats=run.feature_stats,
    )
    return TrainingResult(
        path=path,
        metrics=metrics,
        threshold=threshold,
        history=run.history,
        val_slide_ids=[table.slide_ids[int(r)] for r in val_rows],
    )
