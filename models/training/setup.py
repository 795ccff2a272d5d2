"""Setting a training run up: statistics, model, MHIM teacher, optimiser and schedules.

The MHIM teacher is what the paper uses: a plain model, converged on the same training
slides, that the teacher starts from (``teacher_source="plain"``, the default: trained
here first, per fold under cross-validation, so no test slide ever reaches it), or the
checkpoint given as ``teacher_init``. The student starts as the reference's
``init_stu_type`` says (``mhim.init_student``): from scratch, with the plain model's
instance embedding only (``fc``, the published commands), or as the whole plain model.
The older self warm-up (``teacher_source="self"``: plain epochs inside the run, then a
copy) stays as an option.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import torch
from slidescope.models.checkpoints import load_into, read_meta
from slidescope.models.features import FeatureMoments
from slidescope.models.jobs import Job, Progress
from slidescope.models.mil.base import MILModel
from slidescope.models.mil.registry import create_model
from slidescope.models.ood import feature_stats
from slidescope.models.training.config import TrainingConfig, TrainingConfigError
from slidescope.models.training.data import TrainingSet, survival_targets
from slidescope.models.training.masking import cosine_schedule
from slidescope.models.training.recycle import GlobalRecycle
from slidescope.models.training.resume import run_fingerprint
from slidescope.models.training.run import Run
from slidescope.models.training.steps import LossSettings
from slidescope.models.training.teacher import make_teacher, momentum_schedule

R = TypeVar("R")


def teacher_path(out: Path) -> Path:
    """Where a run's plain teacher is saved: ``<out stem>_teacher<suffix>``."""
    return out.with_name(f"{out.stem}_teacher{out.suffix}")


def fingerprint(config: TrainingConfig, training_set: TrainingSet) -> str:
    """The run's identity: its settings and its training and validation slides."""
    ids = training_set.table.slide_ids
    return run_fingerprint(
        config.to_meta(),
        [ids[int(r)] for r in training_set.train_rows],
        [ids[int(r)] for r in training_set.val_rows],
    )


def _targets(
    training_set: TrainingSet, config: TrainingConfig
) -> tuple[np.ndarray, list[str], list[float] | None]:
    table = training_set.table
    if table.task == "survival":
        targets, edges = survival_targets(training_set, config.survival_bins)
        return targets, [f"time bin {i}" for i in range(config.survival_bins)], edges
    if len(table.class_names) < 2:
        raise TrainingConfigError(f"{table.path}: training needs at least two classes")
    return table.targets, list(table.class_names), None


def _statistics(
    training_set: TrainingSet, total: int
) -> Job[tuple[np.ndarray, np.ndarray, dict[str, Any]]]:
    """Input standardisation and the feature statistics of the training slides."""
    moments, means = FeatureMoments(), []
    rows = training_set.train_rows
    for i, row in enumerate(rows):
        # One step per file: a long pass over a large set stays cancellable.
        yield Progress(0, total, f"input standardisation: slide {i + 1}/{len(rows)}")
        moments.add_file(training_set.paths[int(row)])
        means.append(training_set.bags[int(row)].double().mean(dim=0).numpy())
    mean, std = moments.result()
    return mean, std, feature_stats(mean, np.square(std), np.stack(means))


def _plain_teacher(config: TrainingConfig, training_set: TrainingSet) -> Job[Path]:
    """Train (or reuse) the plain model the teacher starts from; returns its path."""
    from slidescope.models.training.trainer import fit

    plain = dataclasses.replace(
        config,
        method="plain",
        aem=0.0,
        epochs=config.mhim.teacher_epochs or config.epochs,
        min_epochs=min(config.min_epochs, config.mhim.teacher_epochs or config.epochs),
        out=teacher_path(config.out),
    )
    if plain.out.is_file():
        meta = read_meta(plain.out)
        if meta.training.get("run_fingerprint") == fingerprint(plain, training_set):
            return plain.out  # the same plain run finished before (a resumed run)
    result = yield from _prefixed(fit(plain, training_set), "plain teacher")
    return result.path


def _prefixed(job: Job[R], prefix: str) -> Job[R]:
    try:
        while True:
            p = next(job)
            yield Progress(p.done, p.total, f"{prefix}: {p.what}", p.metrics)
    except StopIteration as stop:
        return stop.value


def _init_student(model: MILModel, plain: MILModel, how: str) -> None:
    # The student reads features standardised as the plain model's weights expect.
    model.set_standardisation(plain.feature_mean, plain.feature_std)
    if how == "all":
        model.load_state_dict(plain.state_dict())
    elif how == "fc":
        embedding = {k: v for k, v in plain.state_dict().items() if k.startswith("embedding.")}
        if not embedding:
            raise TrainingConfigError(f"{model.arch} has no instance embedding to copy (fc)")
        model.load_state_dict(embedding, strict=False)


def _teacher(
    config: TrainingConfig, training_set: TrainingSet, model: MILModel, kwargs: dict
) -> Job[tuple[MILModel | None, Path | None]]:
    """The MHIM teacher (None for plain runs) and the plain model's path, if any."""
    if config.method != "mhim":
        return None, None
    if config.teacher_init is None and config.mhim.teacher_source == "self":
        return make_teacher(model), None
    path = config.teacher_init
    if path is None:
        path = yield from _plain_teacher(config, training_set)
    plain = create_model(config.model, model.in_dim, model.n_classes, **kwargs)
    load_into(plain, path)
    _init_student(model, plain, config.mhim.init_student)
    return make_teacher(plain), path


def set_up(
    config: TrainingConfig, training_set: TrainingSet, device: torch.device
) -> Job[tuple[Run, Path | None]]:
    """Everything a run needs before its first epoch; returns ``(Run, teacher path)``."""
    targets, class_names, edges = _targets(training_set, config)
    mean, std, stats = yield from _statistics(
        training_set, config.epochs * len(training_set.train_rows)
    )
    from slidescope.models.training.trainer import safe_std

    kwargs = config.resolved_model_kwargs()
    dim = training_set.reference.feature_dim
    model = create_model(config.model, dim, len(class_names), **kwargs)
    model.set_standardisation(torch.from_numpy(mean), torch.from_numpy(safe_std(std)))
    teacher, path = yield from _teacher(config, training_set, model, kwargs)
    if path is not None and config.teacher_init is None:
        # Re-seeded so the student's own randomness does not depend on the plain teacher
        # stage (trained now, or reused by a resumed run).
        torch.manual_seed(config.seed + 7)
    model.to(device).train()
    if teacher is not None:
        teacher.to(device)
    recycle = None
    if teacher is not None and config.mhim.recycle:
        m = config.mhim
        recycle = GlobalRecycle(
            model.hidden_dim, m.recycle_tokens, m.recycle_heads, m.recycle_momentum,
            m.recycle_dropout,
        ).to(device)  # fmt: skip
    parameters = list(model.parameters()) + (list(recycle.parameters()) if recycle else [])
    optimiser_class = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    optimiser = optimiser_class(parameters, lr=config.lr, weight_decay=config.weight_decay)
    n_rows = len(training_set.train_rows)
    total = config.epochs * n_rows
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimiser, lr_lambda(config, n_rows))
    warmup_mhim = config.mhim_warmup_epochs()
    mhim_steps = total - warmup_mhim * n_rows
    m = config.mhim
    high = m.mask_ratio_high
    mask_high = (
        cosine_schedule(high, 0.0, mhim_steps) if m.mask_ratio_high_decay else [high] * mhim_steps
    )
    weights = None
    if config.balance == "weights" and training_set.table.task == "classification":
        counts = np.bincount(targets[training_set.train_rows], minlength=len(class_names))
        share = len(training_set.train_rows) / (len(class_names) * np.maximum(counts, 1.0))
        weights = torch.tensor(share, dtype=torch.float32, device=device)
    return Run(
        config=config,
        training_set=training_set,
        device=device,
        targets=targets,
        class_names=class_names,
        survival_edges=edges,
        model=model,
        teacher=teacher,
        recycle=recycle,
        optimiser=optimiser,
        scheduler=scheduler,
        settings=LossSettings(training_set.table.task, weights, config.aem, config.survival_alpha),
        mask_high=mask_high,
        momentum=momentum_schedule(m.momentum, m.momentum_final, mhim_steps),
        warmup_mhim=warmup_mhim,
        order_generator=torch.Generator().manual_seed(config.seed),
        mask_generator=torch.Generator().manual_seed(config.seed + 1),
        feature_stats=stats,
        fingerprint=fingerprint(config, training_set),
    ), path


def lr_factor(step: int, total: int, warmup: int, floor: float = 0.01) -> float:
    """Linear warm-up, then a cosine from 1 to ``floor`` (both relative to the base rate).

    ``step``, ``total`` and ``warmup`` count in one unit: optimiser steps, or epochs. At
    ``floor`` 0 without warm-up, position ``t`` of ``total`` gives the factor of
    ``CosineAnnealingLR(T_max=total, eta_min=0)`` after ``t`` of its steps.
    """
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def lr_lambda(config: TrainingConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning-rate factor per optimiser step, as ``config`` schedules it.

    ``lr_schedule="step"`` moves the cosine after every step (to 1 % of the rate unless
    ``min_lr`` says otherwise: late epochs still learn); ``"epoch"`` holds the rate for a
    whole epoch and moves it between epochs, as the reference's per-epoch schedulers do.
    """
    floor = 0.01 if config.min_lr is None else config.min_lr / config.lr
    if config.lr_schedule == "epoch":
        per_epoch = max(1, steps_per_epoch)
        return lambda s: lr_factor(s // per_epoch, config.epochs, config.warmup_epochs, floor)
    total = config.epochs * steps_per_epoch
    warmup = config.warmup_epochs * steps_per_epoch
    return lambda s: lr_factor(s, total, warmup, floor)
