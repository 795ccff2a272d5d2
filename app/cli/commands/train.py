"""``slidescope train``: train a MIL model (plain or MHIM, optional AEM) on feature files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from slidescope.app.cli.options import add_device, add_out, add_quiet
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


def _presets_help() -> str:
    from slidescope.models.training.presets import describe, preset_names

    return "published settings of the MHIM-MIL papers (explicit options win): " + "; ".join(
        describe(name) for name in preset_names()
    )


def _models_help() -> str:
    from slidescope.models.mil.registry import list_models

    return (
        f"registry name: {', '.join(list_models())}. Keep the MIL assumption (a bag is "
        "positive because of what it holds, e.g. a metastasis): concept_presence and "
        "instance_max only — no other instance can lower their positive score and instance "
        "counts do not matter; concept_presence can also require several findings "
        "together. The others can learn such shortcuts (README, Models)"
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``train`` options (``--help`` shows every default)."""
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
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
    data.add_argument(
        "--annotations", type=Path, default=None, metavar="DIR",
        help="folder of <slide_id>.geojson region annotations: adds the instance loss on "
        "annotated patches (see `slidescope finetune --help` for the rules)",
    )  # fmt: skip
    data.add_argument("--cache-gb", type=float, default=2.0, help="memory budget of the bag cache")
    data.add_argument(
        "--max-instances", type=int, default=None, help="subsample larger training bags"
    )

    model = parser.add_argument_group("model")
    model.add_argument("--preset", default=None, metavar="NAME", help=_presets_help())
    model.add_argument("--model", default="abmil", help=_models_help())
    model.add_argument(
        "--model-config", choices=["default", "reference"], default="default",
        help="reference: the MHIM-MIL reference code's baseline network (abmil, transmil, dsmil)",
    )  # fmt: skip
    model.add_argument(
        "--model-arg", action="append", type=_model_arg, default=[], metavar="KEY=VALUE",
        help="extra model argument, e.g. hidden_dim=256 (repeatable)",
    )  # fmt: skip
    add_out(model, "checkpoint to write (.safetensors)")

    fit = parser.add_argument_group("optimisation and selection")
    fit.add_argument("--method", choices=["plain", "mhim"], default="plain")
    fit.add_argument(
        "--aem", type=float, default=0.0, metavar="LAMBDA", help="attention entropy weight"
    )
    fit.add_argument("--epochs", type=int, default=50)
    fit.add_argument("--patience", type=int, default=10, help="early stopping; 0 never stops")
    fit.add_argument(
        "--min-epochs", type=int, default=0,
        help="no epoch before this is kept and training never stops before it",
    )  # fmt: skip
    fit.add_argument(
        "--stop-epoch", type=int, default=None,
        help="the reference's stop_epoch: early stopping only once the 0-based epoch "
        "exceeds it; unlike --min-epochs, any epoch may be kept",
    )  # fmt: skip
    fit.add_argument(
        "--selection-metric", default="auto",
        choices=["auto", "auc", "loss", "accuracy", "balanced_accuracy", "c_index"],
        help="validation figure that picks the kept epoch (auto: AUC, balanced accuracy "
        "for >2 classes, c-index for survival)",
    )  # fmt: skip
    fit.add_argument("--lr", type=float, default=2e-4)
    fit.add_argument("--weight-decay", type=float, default=1e-5)
    fit.add_argument(
        "--optimizer", choices=["adamw", "adam"], default="adamw",
        help="adam: weight decay as an L2 term, as the reference",
    )  # fmt: skip
    fit.add_argument(
        "--lr-schedule", choices=["step", "epoch"], default="step",
        help="the cosine learning rate moves after every step, or once per epoch (the "
        "reference)",
    )  # fmt: skip
    fit.add_argument(
        "--min-lr", type=float, default=None,
        help="learning rate at the end of the cosine (default: 1%% of --lr)",
    )  # fmt: skip
    fit.add_argument("--warmup-epochs", type=int, default=0, help="learning-rate warm-up")
    fit.add_argument("--balance", choices=["weights", "sampling", "none"], default="weights")
    fit.add_argument("--seed", type=int, default=0)
    add_device(fit)
    fit.add_argument(
        "--folds", type=int, default=None, metavar="K", help="K-fold cross-validation"
    )
    fit.add_argument("--survival-bins", type=int, default=4)
    fit.add_argument(
        "--no-resume", action="store_true",
        help="start afresh even if a killed run with the same settings left its state",
    )  # fmt: skip

    mhim = parser.add_argument_group("MHIM (--method mhim)")
    mhim.add_argument(
        "--teacher-init", type=Path, default=None,
        help="plain-trained checkpoint the teacher starts from (with --folds: a path with "
        "{fold}, one per fold); default: train a plain model on the run's training slides",
    )  # fmt: skip
    mhim.add_argument(
        "--teacher-source", choices=["plain", "self"], default="plain",
        help="without --teacher-init: plain (train a plain model first, as the paper) or "
        "self (plain warm-up epochs inside the run)",
    )  # fmt: skip
    mhim.add_argument(
        "--teacher-epochs",
        type=int,
        default=None,
        help="epochs of the plain teacher run (default: --epochs)",
    )
    mhim.add_argument(
        "--init-student", choices=["none", "fc", "all"], default="fc",
        help="what the student takes from the plain model (the reference's init_stu_type)",
    )  # fmt: skip
    mhim.add_argument(
        "--teacher-mode", choices=["eval", "train"], default="eval",
        help="teacher forward with dropout off (eval) or on (train)",
    )  # fmt: skip
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
    mhim.add_argument("--recycle-tokens", type=int, default=1, help="k global tokens")
    mhim.add_argument("--recycle-heads", type=int, default=8)
    mhim.add_argument("--recycle-dropout", type=float, default=0.1)
    mhim.add_argument("--recycle-momentum", type=float, default=0.9999, help="query EMA")
    mhim.add_argument(
        "--merge-ratio", type=float, default=1.0,
        help="with recycling: share of the instances the masks leave that stay instances; "
        "the rest join the recycled ones (the journal's merge_ratio)",
    )  # fmt: skip
    mhim.add_argument(
        "--recycle-source",
        choices=["teacher", "student"],
        default="student",
        help="hidden instances the recycle network reads (student: the reference's path)",
    )
    mhim.add_argument(
        "--mhim-warmup-epochs", type=int, default=None,
        help="--teacher-source self: plain epochs before masking (default: epochs/5)",
    )  # fmt: skip
    add_quiet(parser)
    _record_explicit(parser)


def _record_explicit(parser: argparse.ArgumentParser) -> None:
    """Make every option note in ``args._explicit`` that the user typed it.

    A preset fills the settings the user did not give; an option typed with its default
    value (``--method plain``) is given all the same, which comparing values cannot tell.
    """
    for action in parser._actions:  # argparse has no public list of its actions
        if not action.option_strings or action.dest == "help":
            continue
        base = type(action)

        def call(
            self: argparse.Action,
            parser: argparse.ArgumentParser,
            namespace: argparse.Namespace,
            values: Any,
            option_string: str | None = None,
            _base: type[argparse.Action] = base,
        ) -> None:
            explicit = set(getattr(namespace, "_explicit", None) or ())
            namespace._explicit = explicit | {self.dest}
            _base.__call__(self, parser, namespace, values, option_string)

        action.__class__ = type(f"Explicit{base.__name__}", (base,), {"__call__": call})


#: options whose setting has another name in TrainingConfig / MHIMConfig
_RENAMED = {
    "no_recycle": "mhim.recycle",
    "no_mask_ratio_high_decay": "mhim.mask_ratio_high_decay",
    "mhim_warmup_epochs": "mhim.warmup_epochs",
    "model_arg": "model_kwargs",
    "cache_gb": "cache_bytes",
    "no_resume": "resume",
}


def _explicit_settings(args: argparse.Namespace) -> set[str]:
    import dataclasses

    from slidescope.models.training.config import MHIMConfig, TrainingConfig

    top = {f.name for f in dataclasses.fields(TrainingConfig)}
    inner = {f.name for f in dataclasses.fields(MHIMConfig)}
    settings = set()
    for dest in getattr(args, "_explicit", None) or ():
        name = _RENAMED.get(dest, dest)
        if name in top or name.startswith("mhim."):
            settings.add(name)
        elif name in inner:
            settings.add(f"mhim.{name}")
    return settings


def config_from_args(args: argparse.Namespace) -> Any:
    """Build a :class:`TrainingConfig` from parsed arguments (with its preset applied).

    Options the user typed win over the preset's settings.
    """
    from slidescope.models.training.presets import apply_preset

    config = _config(args)
    if args.preset is None:
        return config
    return apply_preset(config, args.preset, _explicit_settings(args))


def _config(args: argparse.Namespace) -> Any:
    from slidescope.models.training.config import MHIMConfig, TrainingConfig

    return TrainingConfig(
        features=args.features,
        labels=args.labels,
        out=args.out,
        model=args.model,
        model_kwargs=dict(args.model_arg),
        model_config=args.model_config,
        method=args.method,
        task=args.task,
        aem=args.aem,
        epochs=args.epochs,
        patience=args.patience,
        min_epochs=args.min_epochs,
        stop_epoch=args.stop_epoch,
        selection_metric=args.selection_metric,
        lr=args.lr,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        lr_schedule=args.lr_schedule,
        min_lr=args.min_lr,
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
        resume=not args.no_resume,
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
            recycle_heads=args.recycle_heads,
            recycle_dropout=args.recycle_dropout,
            recycle_momentum=args.recycle_momentum,
            merge_ratio=args.merge_ratio,
            recycle_source=args.recycle_source,
            teacher_source=args.teacher_source,
            teacher_epochs=args.teacher_epochs,
            init_student=args.init_student,
            teacher_mode=args.teacher_mode,
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
    from slidescope.models.devices import describe_device, resolve_device
    from slidescope.models.training.crossval import cross_validate
    from slidescope.models.training.trainer import train

    if args.out.suffix != ".safetensors":
        raise SlideScopeError(f"--out {args.out}: checkpoints are .safetensors files")
    config = config_from_args(args)
    if config.method != "mhim" and config.teacher_init is not None:
        raise SlideScopeError("--teacher-init applies to --method mhim only")
    if args.folds and config.teacher_init is not None and "{fold}" not in str(config.teacher_init):
        raise SlideScopeError(
            f"--teacher-init {config.teacher_init}: with --folds, one plain checkpoint serves "
            "every fold and would have seen some fold's test slides; give one per fold "
            "({fold} in the path) or leave it out (each fold trains its own)"
        )
    # Every setting, the model name and its arguments are checked before any data loads.
    config.validate()
    device = describe_device(resolve_device(config.device))  # a GPU this machine lacks: here
    if not args.quiet:
        print(f"training {config.model} ({config.method}) on {device}", file=sys.stderr)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.annotations is not None:
        from slidescope.app.training.train_annotated import train_annotated

        return train_annotated(args, config)
    if args.folds:
        summary = run_with_progress(
            cross_validate(config, args.folds),
            f"{args.folds}-fold {config.method}",
            args.quiet,
        )
        print(f"cross-validation summary: {summary.summary_path}")
        for key, stats in summary.summary.items():
            if key.startswith("test_") and key[5:] in _SHOWN:
                print(f"  test {key[5:]}: {stats['mean']:.4f} ± {stats['std']:.4f}")
        return 0
    result = run_with_progress(
        train(config), f"train {config.model} ({config.method})", args.quiet
    )
    print(f"model: {result.path}")
    for key, value in result.metrics.items():
        print(f"  {key}: {_format(value)}")
    if result.threshold is not None:
        print(f"  threshold (validation, Youden): {result.threshold:.4f}")
    return 0
