"""``slidescope finetune``: teach a model from annotated slides; writes a new model version."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path
from typing import Any

from slidescope.app.errors import SlideScopeError

NAME = "finetune"
HELP = (
    "Fine-tune a model on slides with labels and/or region annotations (a project's, or "
    "given); writes a new model version beside its base, never over it."
)


def _pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected NAME=CLASS, got {text!r}")
    return key, value


def add_finetune_options(parser: argparse.ArgumentParser) -> None:
    """The options ``finetune`` shares with ``train --annotations``."""
    from slidescope.models.training.finetune_settings import FINETUNE_LR, VALIDATION_RULE

    fit = parser.add_argument_group("fine-tuning")
    fit.add_argument("--method", choices=["plain", "mhim", "aem"], default="plain")
    fit.add_argument("--epochs", type=int, default=15)
    fit.add_argument("--patience", type=int, default=5, help="early stopping; 0 never stops")
    fit.add_argument("--lr", type=float, default=FINETUNE_LR, help="default: %(default)g")
    fit.add_argument(
        "--instance-weight", type=float, default=None, metavar="W",
        help="weight of the instance loss on annotated patches (default: 1 when any patch is "
        "annotated, else 0)",
    )  # fmt: skip
    fit.add_argument(
        "--validation", choices=["auto", "on", "off"], default="auto", help=VALIDATION_RULE
    )
    fit.add_argument("--val-fraction", type=float, default=0.25)
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--device", default="auto", help="auto, cpu or cuda")
    classes = parser.add_argument_group("classes")
    classes.add_argument(
        "--add-class", action="append", default=[], metavar="NAME",
        help="a class the base lacks: a new output is added, the old ones kept",
    )  # fmt: skip
    classes.add_argument(
        "--class-map", action="append", type=_pair, default=[], metavar="NAME=CLASS",
        help="read annotation (or label) class NAME as the model's CLASS, e.g. Tumor=lesion",
    )  # fmt: skip
    classes.add_argument(
        "--outside-class", default=None, metavar="CLASS",
        help="class of patches outside every region of an annotated slide, and of every "
        "patch of a slide labelled CLASS (e.g. normal)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``finetune`` options."""
    from slidescope.app.training.patch_labels import LABEL_RULE, PATCH_RULE

    parser.epilog = f"Patch labels: {PATCH_RULE}. Slide labels: {LABEL_RULE}."
    source = parser.add_argument_group("slides")
    source.add_argument("--project", type=Path, default=None, help="a SlideScope project folder")
    source.add_argument(
        "--slide", action="append", default=[], metavar="ID",
        help="use only this project slide (repeatable; default: every slide with a label or "
        "annotations)",
    )  # fmt: skip
    source.add_argument("--slides", nargs="*", type=Path, default=[], help="slide files")
    source.add_argument("--labels", type=Path, default=None, help="CSV slide_id,label")
    source.add_argument(
        "--annotations",
        type=Path,
        default=None,
        help="folder of <slide_id>.geojson (or <slide_id>.lesions.geojson)",
    )
    source.add_argument("--features", type=Path, default=None, help="folder of <slide_id>.h5")
    source.add_argument("--cache", type=Path, default=None, help="analysis cache folder")
    parser.add_argument(
        "--base", type=Path, default=None,
        help="checkpoint (file, or a project's version name) to start from (default: the "
        "project's active model)",
    )  # fmt: skip
    parser.add_argument(
        "--out", required=True, type=Path,
        help="the new version (.safetensors); a bare name goes into the project's models/",
    )  # fmt: skip
    parser.add_argument("--activate", action="store_true", help="make it the active model")
    add_finetune_options(parser)


def settings_from_args(args: argparse.Namespace) -> Any:
    """:class:`FinetuneSettings` from parsed arguments."""
    from slidescope.models.training.finetune_settings import FinetuneSettings

    return FinetuneSettings(
        method=args.method, epochs=args.epochs, patience=args.patience, lr=args.lr,
        instance_weight=args.instance_weight, validation=args.validation,
        val_fraction=args.val_fraction, seed=args.seed, device=args.device,
    )  # fmt: skip


def read_labels_csv(path: Path | None) -> dict[str, str]:
    """``slide_id -> label`` from a CSV with those columns (empty when no file)."""
    if path is None:
        return {}
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise SlideScopeError(f"{path}: cannot read the labels ({error})") from None
    if rows and not {"slide_id", "label"} <= set(rows[0]):
        raise SlideScopeError(f"{path}: a labels CSV needs the columns slide_id and label")
    return {r["slide_id"]: r["label"] for r in rows if r.get("label")}


def annotation_file(folder: Path | None, slide_id: str) -> Path | None:
    """``<slide_id>.geojson`` in ``folder`` (or the demo generator's ``.lesions.geojson``)."""
    if folder is None:
        return None
    for name in (f"{slide_id}.geojson", f"{slide_id}.lesions.geojson"):
        if (folder / name).is_file():
            return folder / name
    return None


def _project_slides(args: argparse.Namespace) -> tuple[Any, list[Any]]:
    from slidescope.app.project.project import Project
    from slidescope.app.training.finetune import TrainingSlide

    project = Project.open(args.project)
    wanted = set(args.slide)
    slides = []
    for entry in project:
        if wanted and entry.slide_id not in wanted:
            continue
        annotations = project.annotation_path(entry.slide_id)
        has_regions = annotations.is_file()
        if not wanted and entry.label is None and not has_regions:
            continue
        slides.append(
            TrainingSlide(
                project.slide_path(entry), entry.label, annotations if has_regions else None
            )
        )
    unknown = wanted - {e.slide_id for e in project}
    if unknown:
        raise SlideScopeError(f"{args.project}: no slide(s) {', '.join(sorted(unknown))}")
    return project, slides


def run(args: argparse.Namespace) -> int:
    """Fine-tune and print where the new version went, its lineage and figures."""
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.app.training.finetune import (
        FinetuneRequest,
        TrainingSlide,
        finetune,
        prepare_finetune,
    )
    from slidescope.models.devices import describe_device, resolve_device

    project = None
    labels = read_labels_csv(args.labels)
    if args.project is not None:
        project, slides = _project_slides(args)
        base_name = str(args.base) if args.base is not None else project.active_model
        versions = {v.name for v in project.model_versions}
        if base_name in versions:
            base = project.model_path(base_name)
        else:
            base, base_name = args.base, None
        out = args.out if args.out.parent != Path() else project.models_dir / args.out
        if out.suffix != ".safetensors":
            out = out.with_name(out.name + ".safetensors")
        cache = args.cache or project.caches_dir
    else:
        if not args.slides or args.base is None or args.cache is None:
            raise SlideScopeError("without --project, give --slides, --base and --cache")
        slides = []
        for path in args.slides:
            stem = Path(path).stem
            slides.append(
                TrainingSlide(path, labels.get(stem), annotation_file(args.annotations, stem))
            )
        base, out, cache = args.base, args.out, args.cache
    if not base:
        raise SlideScopeError("no --base checkpoint, and the project has no active model")
    request = FinetuneRequest(
        base=Path(base), slides=slides, out=Path(out), cache_dir=Path(cache),
        settings=settings_from_args(args), features_dir=args.features,
        add_classes=list(args.add_class), class_map=dict(args.class_map),
        outside_class=args.outside_class,
    )  # fmt: skip
    plan = prepare_finetune(request)
    device = describe_device(resolve_device(request.settings.device))
    if not args.quiet:
        print(f"fine-tuning on {device}", file=sys.stderr)
    for caution in plan.cautions:
        print(f"caution: {caution}", file=sys.stderr)
    outcome = run_with_progress(finetune(request, plan), f"finetune ({args.method})", args.quiet)
    print_outcome(outcome)
    if project is not None:
        version = project.add_model_version(outcome.result.path, base=base_name)
        if args.activate:
            project.set_active_model(version.name)
        project.save()
        print(
            f"  added to {args.project} as a model version{' (active)' if args.activate else ''}"
        )
    return 0


def print_outcome(outcome: Any) -> None:
    """Say what was learnt from where, epoch by epoch."""
    result = outcome.result
    print(f"model: {result.path}")
    if result.resumed_from_epoch:
        print(f"  resumed after epoch {result.resumed_from_epoch}")
    for prepared in outcome.plan.slides:
        counts = outcome.patch_counts.get(prepared.identity.slide_id, {})
        shown = ", ".join(f"{k} {v}" for k, v in counts.items() if v) or "no patch labels"
        print(
            f"  {prepared.identity.slide_id}: {prepared.label} ({prepared.label_source}); {shown}"
        )
    for figures in result.history:
        text = ", ".join(f"{k} {v:.4f}" for k, v in figures.items() if k != "epoch")
        print(f"  epoch {int(figures['epoch'])}: {text}")
    if result.val_slide_ids:
        print(f"  validation slides: {', '.join(result.val_slide_ids)}")
    if result.threshold is not None:
        print(f"  threshold: {result.threshold:.4f}")
