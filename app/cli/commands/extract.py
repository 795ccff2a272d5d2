"""``slidescope extract SLIDE... --out DIR``: per-patch features of slides into HDF5 files."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidescope.app.cli.batch_options import add_batch_arguments
from slidescope.app.cli.options import add_device, add_out, add_roi, add_slide_mpp, add_slides

NAME = "extract"
HELP = (
    "Extract per-patch features of slides into <out>/<slide_id>.h5 (resumable; serially, "
    "on a local Dask cluster or on a scheduler's workers, one GPU per worker)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slides(
        parser,
        help="slide files, OME-Zarr folders, folders of slides or CSV lists (column 'slide')",
    )
    add_out(parser, "folder of the feature files")
    parser.add_argument(
        "--extractor",
        default="builtin",
        help="builtin, resnet50-trunc, uni, conch, virchow, "
        "vit_{small,base,large,huge}_patch{14,16}, timm:<name>",
    )
    parser.add_argument("--weights", type=Path, help="local weights file of the extractor")
    parser.add_argument("--target-mpp", type=float, default=0.5, help="patch resolution in µm/px")
    parser.add_argument(
        "--patch", type=int, default=256, help="patch side in pixels at --target-mpp"
    )
    parser.add_argument("--overlap", type=int, default=0, help="patch overlap in pixels")
    parser.add_argument(
        "--min-tissue",
        type=float,
        default=0.5,
        help="minimum tissue share of a kept patch, 0-1",
    )
    add_device(parser)
    parser.add_argument("--batch-size", type=int, default=64, help="patches per forward pass")
    parser.add_argument(
        "--read-threads",
        type=int,
        help="patch reading threads per slide (default: 2 on the CPU; with a GPU, every core "
        "but two, up to 8)",
    )
    add_slide_mpp(parser)
    parser.add_argument(
        "--compile", action="store_true", help="run the extractor via torch.compile"
    )
    add_roi(parser, "GeoJSON region of interest (level-0 px)")
    add_batch_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from slidescope.app.analysis.extract import ExtractConfig, describe_run
    from slidescope.app.analysis.roi import load_roi
    from slidescope.app.batch.runner import run_batch
    from slidescope.app.batch.tasks import ExtractTask, run_extract_task, wants_gpu
    from slidescope.app.cli.batch_options import note, report, resolve_workers
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.app.export.batch import expand_slides
    from slidescope.models.devices import resolve_device

    if args.roi is not None:
        load_roi(args.roi)  # a bad ROI fails once, before any slide
    config = ExtractConfig(
        extractor=args.extractor,
        weights=args.weights,
        target_mpp=args.target_mpp,
        patch_px=args.patch,
        overlap_px=args.overlap,
        min_tissue=args.min_tissue,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.read_threads,
        slide_mpp=args.slide_mpp,
        compile=args.compile,
        roi=args.roi,
        roi_mode=args.roi_mode,
    )
    slides = expand_slides(args.slide)
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    tasks = [ExtractTask(str(slide), str(out), config) for slide in slides]
    workers = resolve_workers(args, slides)
    if args.scheduler is None and workers == 0:
        # the work runs on this machine: say on what (and refuse a GPU it has not, once)
        note(describe_run(config, resolve_device(config.device)))
    job = run_batch(
        tasks, run_extract_task, out, workers=workers, scheduler=args.scheduler,
        gpu=wants_gpu(config), on_message=note,
    )  # fmt: skip
    outcomes = run_with_progress(job, f"extract {len(tasks)} slide(s)")
    return report("extract", outcomes, out / "summary.csv", args.json)
