"""``slidescope tissue SLIDE --out DIR``: the tissue mask as PNG and GeoJSON polygons."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidescope.app.cli.batch_options import add_batch_arguments
from slidescope.app.cli.options import add_out, add_roi, add_slide_mpp, add_slides

NAME = "tissue"
HELP = "Detect tissue on slides; write <slide_id>.tissue.png and <slide_id>.tissue.geojson."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slides(parser, help="slide files, OME-Zarr folders, folders of slides or CSV lists")
    add_out(parser, "output folder")
    add_slide_mpp(parser)
    add_roi(parser, "GeoJSON region of interest (level-0 px) to restrict the mask")
    add_batch_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from slidescope.app.analysis.roi import load_roi
    from slidescope.app.batch.runner import run_batch
    from slidescope.app.batch.tasks import TissueTask, run_tissue_task
    from slidescope.app.cli.batch_options import note, report, resolve_workers
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.app.export.batch import expand_slides

    if args.roi is not None:
        load_roi(args.roi)  # a bad ROI fails once, before any slide
    slides = expand_slides(args.slide)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    roi = None if args.roi is None else str(args.roi)
    tasks = [TissueTask(str(s), str(out), args.slide_mpp, roi, args.roi_mode) for s in slides]
    job = run_batch(
        tasks, run_tissue_task, out, workers=resolve_workers(args, slides),
        scheduler=args.scheduler, on_message=note, warm_modules=("slidescope.app.analysis.tissue",),
    )  # fmt: skip
    outcomes = run_with_progress(job, f"tissue {len(tasks)} slide(s)")
    return report("tissue", outcomes, out / "summary.csv", args.json)
