"""``slidescope train``: train a MIL model (plain or MHIM, optional AEM) on feature files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from slidescope.app.errors import SlideScopeError

NAME = "train"
HELP = "Train a MIL model (plain or MHIM-MIL) on patch feature files and a labels CSV."


def _model_arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``train`` options."""
    data = parser.add_argument_group("data")
    data.add_argument("--features", required=True, type=Path, help="folder of <slide_id>.h5")
    data.add_argument(
        "--labels", required=True, type=Path,
        help="CSV slide_id,label[,split] (survival: slide_id,time,event[,split])",
    )  # fmt: skip
    data.add_argument("--task", choices=["classification", "survival"], default="classification")
    data.add_argument(
        "--skip-missing", action="store_true", help="leave out slides without features"
    )
    data.add_argument(
        "--val-fraction", type=float, default=0.2, help="held out per class without a split column"
    )
    data.add_argument("--cache-gb", type=float, default=2.0, help="memory budget of the bag cache")
    data.add_argument(
        "--max-instances", type=int, default=None, help="subsample larger training bags"
    )

    model = parser.add_argument_group("model")
    model.add_argument(
        "--model",
        default="abmil",
        help=(
            "registry name: abmil, abmil_gated, transmil, dsmil, clam_sb, mean_pool, "
            "max_pool, instance_max, concept_presence. Keep the MIL assumption (a bag is "
            "positive because of what it holds, e.g. a metastasis): concept_presence and "
            "instance_max only — no other instance can lower their positive score and "
            "instance counts do not matter; concept_presence can also require several "
            "findings together. The others can learn such shortcuts"
        ),
    )
    model.add_argument(
        "--model-arg", action="append", type=_model_arg, default=[], metavar="KEY=VALUE",
        help="extra model argument, e.g. hidden_dim=256 (repeatable)",
    )  # fmt: skip
    model.add_argument(
        "--out", required=True, type=Path, help="checkpoint to write (.safetensors)"
    )

    fit = parser.add_argument_group("optimisation")
    fit.add_argument("--method", choices=["plain", "mhim"], default="plain")
    fit.add_argument(
        "--aem", type=float, default=0.0, metavar="LAMBDA", help="attention entropy weight"
    )
    fit.add_argument("--epochs", type=int, default=50)
    fit.add_argument("--patience", type=int, default=10, help="early stopping; 0 never stops")
    fit.add_argument("--lr", type=float, default=2e-4)
    fit.add_argument("--weight-decay", type=float, default=1e-5)
    fit.add_argument("--warmup-epochs", type=int, default=0, help="learning-rate warm-up")
    fit.add_argument("--balance", choices=["weights", "sampling", "none"], default="weights")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--device", default="auto", help="auto, cpu or cuda")
    fit.add_argument(
        "--folds", type=int, default=None, metavar="K", help="K-fold cross-validation"
    )
    fit.add_argument("--survival-bins", type=int, default=4)

    mhim = parser.add_argument_group("MHIM (--method mhim)")
    mhim.add_argument("--teacher-init", type=Path, default=None, help="plain-trained checkpoint")
    mhim.add_argument("--mask-ratio-high", type=float, default=0.01)
    mhim.add_argument("--mask-ratio-high-random", type=float, default=0.5)
    mhim.add_argument("--no-mask-ratio-high-decay", action="store_true")
    mhim.add_argument("--mask-ratio-low", type=float, default=0.0)
    mhim.add_argument("--mask-ratio-random", type=float, default=0.6)
    mhim.add_argument("--mask-score", choices=["attention", "cls_prob"], default="attention")
    mhim.add_argument("--consistency-weight", type=float, default=0.5)
    mhim.add_argument("--teacher-temperature", type=float, default=0.1)
    mhim.add_argument("--student-temperature", type=float, default=1.0)
    mhim.add_argument("--momentum", type=float, default=0.9999)
    mhim.add_argument("--momentum-final", type=float, default=None)
    mhim.add_argument("--no-recycle", action="store_true", help="no global recycle network")
    mhim.add_argument("--recycle-tokens", type=int, default=10)
    mhim.add_argument(
        "--recycle-source",
        choices=["teacher", "student"],
        default="teacher",
        help="hidden instances the recycle network reads (student: the reference's path)",
    )
    mhim.add_argument(
        "--mhim-warmup-epochs", type=int, default=None,
        help="plain epochs before masking (default: 0 with --teacher-init, else epochs/5)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> Any:
    """Build a :class:`TrainingConfig` from parsed arguments."""
    from slidescope.models.training.config import MHIMConfig, TrainingConfig

    return TrainingConfig(
        features=args.features,
        labels=args.labels,
        out=args.out,
        model=args.model,
        model_kwargs=dict(args.model_arg),
        method=args.method,
        task=args.task,
        aem=args.aem,
        epochs=args.epochs,
        patience=args.patience,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup_epochs=args.warmup_epochs,
        seed=args.seed,
        device=args.device,
        val_fraction=args.val_fraction,
        balance=args.balance,
        max_instances=args.max_instances,
        cache_bytes=int(args.cache_gb * 1024**3),
        survival_bins=args.survival_bins,
        teacher_init=args.teacher_init,
        skip_missing=args.skip_missing,
        mhim=MHIMConfig(
            mask_ratio_high=args.mask_ratio_high,
            mask_ratio_high_random=args.mask_ratio_high_random,
            mask_ratio_high_decay=not args.no_mask_ratio_high_decay,
            mask_ratio_low=args.mask_ratio_low,
            mask_ratio_random=args.mask_ratio_random,
            mask_score=args.mask_score,
            consistency_weight=args.consistency_weight,
            teacher_temperature=args.teacher_temperature,
            student_temperature=args.student_temperature,
            momentum=args.momentum,
            momentum_final=args.momentum_final,
            recycle=not args.no_recycle,
            recycle_tokens=args.recycle_tokens,
            recycle_source=args.recycle_source,
            warmup_epochs=args.mhim_warmup_epochs,
        ),
    )


def _format(value: float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return f"{value:.4f}" if isinstance(value, float) else str(value)


#: the cross-validation figures worth a line on the terminal (all are in the summary JSON)
_SHOWN = ("auc", "accuracy", "balanced_accuracy", "f1", "c_index")


def run(args: argparse.Namespace) -> int:
    """Train and print where the model went and its validation figures."""
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.models.training.crossval import cross_validate
    from slidescope.models.training.trainer import train

    if args.out.suffix != ".safetensors":
        raise SlideScopeError(f"--out {args.out}: checkpoints are .safetensors files")
    if args.method != "mhim" and args.teacher_init is not None:
        raise SlideScopeError("--teacher-init applies to --method mhim only")
    config = config_from_args(args)
    config.validate()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.folds:
        result = run_with_progress(
            cross_validate(config, args.folds),
            f"{args.folds}-fold {args.method}",
            args.quiet,
        )
        print(f"cross-validation summary: {result.summary_path}")
        for key, stats in result.summary.items():
            if key.startswith("test_") and key[5:] in _SHOWN:
                print(f"  test {key[5:]}: {stats['mean']:.4f} ± {stats['std']:.4f}")
        return 0
    result = run_with_progress(
        train(config), f"train {args.model} ({args.method})", args.quiet
    )
    print(f"model: {result.path}")
    for key, value in result.metrics.items():
        print(f"  {key}: {_format(value)}")
    if result.threshold is not None:
        print(f"  threshold (validation, Youden): {result.threshold:.4f}")
    return 0
