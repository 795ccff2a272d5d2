"""The ``train --annotations`` path of the CLI: labels + features + annotations, no project."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

from slidescope.app.errors import SlideScopeError


def train_annotated(args: argparse.Namespace, config: Any) -> int:
    """Train a new model with the instance loss on annotated patches; print the outcome."""
    from slidescope.app.cli.commands.finetune import (
        print_outcome,
        read_labels_csv,
    )
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.app.training.finetune import FinetuneRequest, TrainingSlide, finetune
    from slidescope.app.training.from_scratch import fresh_base
    from slidescope.models.training.finetune_settings import FinetuneSettings

    if args.folds or args.task != "classification":
        raise SlideScopeError("--annotations trains one classification model (no --folds)")
    if not args.annotations.is_dir():
        raise SlideScopeError(f"--annotations {args.annotations}: not a folder")
    labels = read_labels_csv(args.labels)
    slides = []
    for slide_id, label in labels.items():
        features = args.features / f"{slide_id}.h5"
        if not features.is_file():
            if args.skip_missing:
                continue
            raise SlideScopeError(f"{features}: no feature file for labelled slide {slide_id}")
        geojson = args.annotations / f"{slide_id}.geojson"
        slides.append(TrainingSlide(None, label, geojson if geojson.is_file() else None, features))
    class_names = sorted(set(labels.values()))
    settings = FinetuneSettings(
        method="aem" if args.aem > 0 and args.method == "plain" else args.method,
        epochs=args.epochs, patience=args.patience, lr=args.lr,
        weight_decay=args.weight_decay, aem=args.aem or 0.1, seed=args.seed,
        device=args.device, val_fraction=args.val_fraction, mhim=config.mhim,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="slidescope-train-") as tmp:
        base = fresh_base(
            [s.features for s in slides if s.features is not None], args.model,
            dict(args.model_arg), class_names, Path(tmp) / "initial.safetensors", args.seed,
        )  # fmt: skip
        request = FinetuneRequest(
            base=base, slides=slides, out=args.out, cache_dir=Path(tmp), settings=settings
        )
        outcome = run_with_progress(
            finetune(request), f"train {args.model} ({args.method}, annotations)", args.quiet
        )
    print_outcome(outcome)
    return 0
