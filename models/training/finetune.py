"""Fine-tuning as a job: a trained checkpoint goes on learning from annotated slides.

``finetune_model`` starts from a base checkpoint (its weights, its input standardisation
and, for MHIM, its teacher), trains on bags whose slides carry a label and, where a
pathologist drew regions, patch labels (see :mod:`instance_loss`), and writes a NEW
checkpoint whose metadata records the lineage. The bag loss is ``train``'s (plain, MHIM
or AEM: the same step functions); the instance loss is added with a weight.

Validation (:data:`VALIDATION_RULE`): a share of each class is held out for early
stopping and the decision threshold when every class has enough slides.

Resumable: after every finished epoch the state is saved atomically beside the output
(:mod:`finetune_state`); a run killed at any moment and started again with the same
inputs continues from the last finished epoch, with the same result as a run never
interrupted.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import torch
from slidescope.models.checkpoints import CheckpointMeta, load_checkpoint, save_checkpoint
from slidescope.models.features import FeatureBags
from slidescope.models.jobs import Job, Progress
from slidescope.models.mil.base import MILModel
from slidescope.models.training.add_class import grow_classes
from slidescope.models.training.finetune_settings import (
    FinetuneError,
    FinetuneSettings,
    split_validation,
)
from slidescope.models.training.finetune_state import fingerprint, load_state, save_state
from slidescope.models.training.instance_loss import instance_class_weights, instance_loss
from slidescope.models.training.metrics import (
    MIN_PER_CLASS,
    balanced_accuracy,
    roc_auc,
    youden_threshold,
)
from slidescope.models.training.predict import predict_logits, softmax
from slidescope.models.training.recycle import GlobalRecycle
from slidescope.models.training.steps import BagTarget, LossSettings, mhim_step, plain_step
from slidescope.models.training.teacher import ema_update, make_teacher
from slidescope.models.training.trainer import deterministic, resolve_device
from torch import Tensor


@dataclass
class FinetuneBag:
    """One slide of a fine-tuning set.

    Attributes
    ----------
    slide_id : str
        The slide.
    features : Path
        Its feature file.
    label : int
        Its class index.
    instance_labels : ndarray or None
        (N,) int64 class per patch (-1: unlabelled), in the feature file's row order.
    keep : ndarray or None
        (N,) bool, False for patches left out of the bag (under an ``Ignore*`` region).
    """

    slide_id: str
    features: Path
    label: int
    instance_labels: np.ndarray | None = None
    keep: np.ndarray | None = None


@dataclass
class FinetuneResult:
    """A finished fine-tuning run: the new checkpoint and its figures."""

    path: Path
    history: list[dict[str, float]]
    metrics: dict[str, float]
    threshold: float | None
    resumed_from_epoch: int
    val_slide_ids: list[str]


class _KeptBags:
    """Bags with the patches under ``Ignore*`` regions left out."""

    def __init__(self, bags: list[FinetuneBag]) -> None:
        self._bags = FeatureBags([b.features for b in bags])
        self._keep = [None if b.keep is None else torch.from_numpy(b.keep) for b in bags]

    def __len__(self) -> int:
        return len(self._keep)

    def __getitem__(self, index: int) -> Tensor:
        x = self._bags[index]
        keep = self._keep[index]
        return x if keep is None else x[keep]


def _figures(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    if len(labels) == 0:
        return {}
    probs = softmax(logits)
    y = torch.from_numpy(labels)
    loss = float(torch.nn.functional.cross_entropy(torch.from_numpy(logits), y).item())
    if probs.shape[1] == 2:
        return {"val_auc": roc_auc(labels, probs), "val_loss": loss}
    return {
        "val_balanced_accuracy": balanced_accuracy(labels, probs.argmax(axis=1)),
        "val_loss": loss,
    }


def _score(figures: dict[str, float]) -> tuple[float, float]:
    metric = figures.get("val_auc", figures.get("val_balanced_accuracy", math.nan))
    return (-math.inf if math.isnan(metric) else metric, -figures.get("val_loss", 0.0))


def finetune_model(
    base: Path,
    bags: list[FinetuneBag],
    class_names: list[str],
    settings: FinetuneSettings,
    out: Path,
    state_path: Path,
    lineage: dict[str, Any],
) -> Job[FinetuneResult]:
    """Fine-tune ``base`` on ``bags``; a job yielding Progress, returning the result.

    Parameters
    ----------
    base : Path
        The checkpoint to start from (never written).
    bags : list of FinetuneBag
        The slides, their labels and patch labels.
    class_names : list of str
        The output classes: the base's, then any added ones.
    settings : FinetuneSettings
        How to train.
    out : Path
        The new checkpoint (must not be ``base``).
    state_path : Path
        Where the resume state lives during the run (removed at the end).
    lineage : dict
        What the new checkpoint's ``lineage`` records besides the per-epoch metrics.
    """
    settings.validate()
    if Path(out).resolve() == Path(base).resolve():
        raise FinetuneError(f"{out}: the new model must not overwrite its base")
    loaded = load_checkpoint(base)
    meta = loaded.meta
    added = class_names[meta.n_classes :]
    if class_names[: meta.n_classes] != list(meta.class_names):
        raise FinetuneError(f"{base.name}: classes {meta.class_names} must come first")
    labels = np.array([b.label for b in bags], np.int64)
    train_rows, val_rows = split_validation(labels, settings)
    instance = [
        np.full(0, -1, np.int64) if b.instance_labels is None else b.instance_labels for b in bags
    ]
    kept_instance = [
        lab if b.keep is None or lab.size == 0 else lab[b.keep] for lab, b in zip(instance, bags)
    ]
    any_labelled = any((lab >= 0).any() for lab in kept_instance if lab.size)
    weight = settings.instance_weight
    if weight is None:
        weight = 1.0 if any_labelled else 0.0
    run_id = fingerprint(
        {
            "base": lineage.get("base", {}).get("sha256", str(base)),
            "classes": class_names,
            "settings": settings.to_meta(),
            "bags": [
                [b.slide_id, str(b.features), b.label, fingerprint({"i": lab.tolist()})]
                for b, lab in zip(bags, kept_instance)
            ],
        }
    )
    device = resolve_device(settings.device)
    with deterministic(settings.seed):
        model = loaded.model if not added else grow_classes(loaded.model, added)
        model.to(device).train()
        teacher: MILModel | None = None
        recycle: GlobalRecycle | None = None
        if settings.method == "mhim":
            teacher = (
                loaded.teacher if loaded.teacher is not None and not added else make_teacher(model)
            )
            teacher.to(device).eval()
            for parameter in teacher.parameters():
                parameter.requires_grad_(False)
            if settings.mhim.recycle:
                recycle = GlobalRecycle(
                    model.hidden_dim, settings.mhim.recycle_tokens, settings.mhim.recycle_heads,
                    settings.mhim.recycle_momentum,
                ).to(device)  # fmt: skip
        parameters = list(model.parameters()) + (
            list(recycle.parameters()) if recycle is not None else []
        )
        optimiser = torch.optim.AdamW(
            parameters, lr=settings.lr, weight_decay=settings.weight_decay
        )
        loss_settings = LossSettings(aem=settings.aem if settings.method == "aem" else 0.0)
        class_weights = instance_class_weights(
            [kept_instance[r] for r in train_rows], len(class_names)
        )
        order_generator = torch.Generator().manual_seed(settings.seed)
        mask_generator = torch.Generator().manual_seed(settings.seed + 1)
        data = _KeptBags(bags)
        labels_t = [torch.from_numpy(lab) if lab.size else None for lab in kept_instance]

        history: list[dict[str, float]] = []
        best: tuple[float, float] | None = None
        best_state: dict[str, Tensor] = {}
        best_epoch = stale = start_epoch = 0
        state = load_state(state_path, run_id)
        if state is not None:
            model.load_state_dict(state["model"])
            if teacher is not None and state.get("teacher"):
                teacher.load_state_dict(state["teacher"])
            if recycle is not None and state.get("recycle"):
                recycle.load_state_dict(state["recycle"])
            optimiser.load_state_dict(state["optimiser"])
            order_generator.set_state(state["order_generator"])
            mask_generator.set_state(state["mask_generator"])
            torch.set_rng_state(state["torch_rng"])
            history = list(state["history"])
            best = tuple(state["best"]) if state["best"] is not None else None
            best_state, best_epoch = state["best_state"], int(state["best_epoch"])
            stale, start_epoch = int(state["stale"]), int(state["epoch"])
        resumed_from = start_epoch
        total = settings.epochs * len(train_rows)
        step = start_epoch * len(train_rows)
        if start_epoch:
            yield Progress(step, total, f"resuming after epoch {start_epoch}")
        stopped = (
            bool(start_epoch)
            and settings.patience > 0
            and len(val_rows) > 0
            and (stale >= settings.patience)
        )
        for epoch in range(start_epoch + 1, settings.epochs + 1):
            if stopped:
                break
            rate = 0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / settings.epochs))
            for group in optimiser.param_groups:
                group["lr"] = settings.lr * rate
            losses: list[float] = []
            for i in torch.randperm(len(train_rows), generator=order_generator).tolist():
                row = int(train_rows[i])
                x = data[row].to(device)
                target = BagTarget(int(labels[row]))
                if teacher is not None:
                    loss, _ = mhim_step(
                        model, teacher, recycle, x, target, loss_settings, settings.mhim,
                        settings.mhim.mask_ratio_high, mask_generator,
                    )  # fmt: skip
                else:
                    loss, _ = plain_step(model, x, target, loss_settings)
                patch_labels = labels_t[row]
                if weight > 0 and patch_labels is not None:
                    h = model.embed(x)
                    loss = loss + weight * instance_loss(
                        model, h, model.aggregate(h), patch_labels, target.label, class_weights
                    )
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                if teacher is not None:
                    ema_update(teacher, model, settings.mhim.momentum)
                losses.append(float(loss.detach()))
                step += 1
                yield Progress(step, total, f"epoch {epoch}/{settings.epochs}")
            figures: dict[str, float] = {"epoch": float(epoch), "loss": float(np.mean(losses))}
            if len(val_rows):
                logits = predict_logits(model, data, val_rows.tolist(), device)  # type: ignore[arg-type]
                figures.update(_figures(logits, labels[val_rows]))
                score = _score(figures)
                if best is None or score > best:
                    best, best_epoch, stale = score, epoch, 0
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    stale += 1
                stopped = settings.patience > 0 and stale >= settings.patience
            history.append(figures)
            save_state(
                state_path,
                {
                    "fingerprint": run_id,
                    "epoch": epoch,
                    "model": model.state_dict(),
                    "teacher": teacher.state_dict() if teacher is not None else {},
                    "recycle": recycle.state_dict() if recycle is not None else {},
                    "optimiser": optimiser.state_dict(),
                    "order_generator": order_generator.get_state(),
                    "mask_generator": mask_generator.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "history": history,
                    "best": list(best) if best is not None else None,
                    "best_state": best_state,
                    "best_epoch": best_epoch,
                    "stale": stale,
                },
            )
            text = f"epoch {epoch}/{settings.epochs}: loss {figures['loss']:.3f}"
            if "val_auc" in figures:
                text += f", validation AUC {figures['val_auc']:.3f}"
            yield Progress(step, total, text, dict(figures))

        if best_state:
            model.load_state_dict(best_state)
        model.eval()
        rows = val_rows if len(val_rows) else train_rows
        probs = softmax(predict_logits(model, data, rows.tolist(), device))  # type: ignore[arg-type]
        threshold = None
        if len(class_names) == 2:
            # the base's rule: positive class at index 1 ("normal" for the demo model)
            threshold = youden_threshold(labels[rows] == 1, probs[:, 1], min_per_class=MIN_PER_CLASS)
        metrics = dict(history[best_epoch - 1] if best_epoch else history[-1])
        metrics.update(
            best_epoch=float(best_epoch or len(history)), epochs_run=float(len(history))
        )
        yield Progress(step, total, f"saving {out.name}")
        new_meta = _new_meta(meta, model, class_names, settings, weight, metrics, threshold)
        new_meta.lineage = {
            **lineage,
            "epochs": history,
            "instance_weight": weight,
            "validation_slides": [bags[int(r)].slide_id for r in val_rows],
            "date": datetime.now(timezone.utc).isoformat(),
        }
        path = save_checkpoint(
            out, model.cpu(), new_meta, teacher=teacher.cpu() if teacher else None
        )
    state_path.unlink(missing_ok=True)
    return FinetuneResult(
        path=path,
        history=history,
        metrics=metrics,
        threshold=threshold,
        resumed_from_epoch=resumed_from,
        val_slide_ids=[bags[int(r)].slide_id for r in val_rows],
    )


def _new_meta(
    meta: CheckpointMeta,
    model: MILModel,
    class_names: list[str],
    settings: FinetuneSettings,
    weight: float,
    metrics: dict[str, float],
    threshold: float | None,
) -> CheckpointMeta:
    training = dict(meta.training)
    training.update(settings.to_meta())
    training["instance_weight"] = weight
    training["finetuned"] = True
    if settings.method != "mhim":
        # the hard-instance view keeps the base's masking ratio, if it had one
        training["method"] = meta.training.get("method", "plain")
    return CheckpointMeta.for_model(
        model,
        class_names=list(class_names),
        task=meta.task,
        extractor=meta.extractor,
        patch_size=meta.patch_size,
        target_mpp=meta.target_mpp,
        training=training,
        metrics=metrics,
        threshold=threshold,
    )
