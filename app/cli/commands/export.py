"""``slidescope export``: heatmaps of one slide or a cohort, serially or on a Dask cluster."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidescope.app.cli.batch_options import add_batch_arguments
from slidescope.app.cli.options import (
    add_checkpoint,
    add_device,
    add_out,
    add_slide_mpp,
    add_slides,
)

NAME = "export"
HELP = (
    "Analyse slides with a checkpoint and export heatmaps: PNG overlays, pyramidal "
    "OME-TIFF/OME-Zarr overlays, GeoJSON and CSV of patch scores (resumable)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slides(
        parser, help="slide files, folders of slides or CSV lists (column 'slide' or 'path')"
    )
    add_checkpoint(parser, "--model")
    add_out(parser, "output folder (one sub-folder per slide, summary.csv/json)")
    parser.add_argument(
        "--kinds",
        default="all",
        help="comma-separated heatmap kinds among attention, prob, masked and hard, or all",
    )
    parser.add_argument(
        "--normalise",
        "--normalize",
        dest="normalise",
        choices=("raw", "minmax", "rank"),
        default="minmax",
        help="display normalisation",
    )
    parser.add_argument(
        "--smooth",
        action="store_true",
        help="Gaussian smoothing of the heatmaps (one patch sigma)",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="contour threshold on the displayed (normalised) scores, e.g. 0.5",
    )
    parser.add_argument("--colormap", default="turbo", help="matplotlib colormap")
    parser.add_argument("--opacity", type=float, default=0.5, help="overlay opacity 0-1")
    parser.add_argument(
        "--overlay",
        choices=("ome-tiff", "ome-zarr", "none"),
        default="ome-tiff",
        help="pyramidal overlay format",
    )
    parser.add_argument(
        "--mask-ratio",
        type=float,
        default=None,
        help="share of salient patches masked for the hard-instance view (default: the checkpoint's)",
    )
    parser.add_argument(
        "--teacher",
        action="store_true",
        help="let the checkpoint's MHIM teacher choose the salient patches",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="cache of features and results (default OUT/cache)",
    )
    add_device(parser)
    add_slide_mpp(parser)
    parser.add_argument(
        "--features",
        type=Path,
        default=None,
        metavar="DIR",
        help="a folder of feature files (from `slidescope extract`): those that fit the "
        "checkpoint's extractor and patch geometry are used, missing ones are extracted there",
    )
    add_batch_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from slidescope.app.analysis.heatmaps import KINDS, DisplayChoices
    from slidescope.app.cli.batch_options import note, report, resolve_workers
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.app.export.batch import ExportTask, expand_slides, export_batch
    from slidescope.app.export.slide_export import ExportOptions
    from slidescope.models.checkpoints import load_checkpoint
    from slidescope.models.devices import describe_device, resolve_device

    kinds = tuple(k.strip() for k in args.kinds.split(",") if k.strip())
    if kinds == ("all",):
        kinds = KINDS
    # the options check themselves, before any slide is read
    options = ExportOptions(
        kinds=kinds,
        display=DisplayChoices(
            normalisation=args.normalise,
            smooth=args.smooth,
            threshold=args.threshold,
            colormap=args.colormap,
            opacity=args.opacity,
        ),
        overlay_format=args.overlay,
    )
    # a wrong checkpoint (metadata, weights, shapes) fails once, before any slide
    meta = load_checkpoint(args.checkpoint, device="cpu").meta
    slides = expand_slides(args.slide)
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    cache = args.cache or out / "cache"
    tasks = [
        ExportTask(
            slide=str(slide),
            checkpoint=str(args.checkpoint),
            out_dir=str(out),
            options=options,
            cache_dir=str(cache),
            device=args.device,
            mask_ratio=args.mask_ratio,
            slide_mpp=args.slide_mpp,
            use_teacher=args.teacher,
            features_dir=None if args.features is None else str(args.features),
        )
        for slide in slides
    ]
    workers = resolve_workers(args, slides)
    if args.scheduler is None and workers == 0:
        # the work runs on this machine: say on what (and refuse a GPU it has not, once)
        device = describe_device(resolve_device(args.device))
        note(f"{meta.architecture} ({Path(args.checkpoint).name}) on {device}")
    job = export_batch(tasks, out, workers=workers, scheduler=args.scheduler, on_message=note)
    outcomes = run_with_progress(job, f"export {len(tasks)} slide(s)")
    return report("export", outcomes, out / "summary.csv", args.json)
