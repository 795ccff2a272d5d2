"""``slidescope extract SLIDE... --out DIR``: per-patch features of slides into HDF5 files."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slidescope.app.cli.options import add_device, add_out, add_roi, add_slide_mpp, add_slides

NAME = "extract"
HELP = "Extract per-patch features of slides into <out>/<slide_id>.h5 (resumable)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slides(parser)
    add_out(parser, "folder of the feature files")
    parser.add_argument(
        "--extractor",
        default="builtin",
        help="builtin, resnet50-trunc, uni, conch, virchow, "
        "vit_{small,base,large,huge}_patch{14,16}, timm:<name>",
    )
    parser.add_argument("--weights", type=Path, help="local weights file of the extractor")
    parser.add_argument(
        "--target-mpp", type=float, default=0.5, help="patch resolution in µm/px"
    )
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
    parser.add_argument("--workers", type=int, default=2, help="patch reading threads")
    add_slide_mpp(parser)
    parser.add_argument(
        "--compile", action="store_true", help="run the extractor via torch.compile"
    )
    add_roi(parser, "GeoJSON region of interest (level-0 px)")


def run(args: argparse.Namespace) -> int:
    from slidescope.app.analysis.extract import ExtractConfig, extract_many
    from slidescope.app.cli.progress import run_with_progress

    config = ExtractConfig(
        extractor=args.extractor,
        weights=args.weights,
        target_mpp=args.target_mpp,
        patch_px=args.patch,
        overlap_px=args.overlap,
        min_tissue=args.min_tissue,
        device=args.device,
        batch_size=args.batch_size,
        workers=args.workers,
        slide_mpp=args.slide_mpp,
        compile=args.compile,
        roi=args.roi,
        roi_mode=args.roi_mode,
    )
    summary = run_with_progress(
        extract_many([Path(p) for p in args.slide], args.out, config), "extract"
    )
    for path in summary.empty:
        print(
            f"slidescope extract: warning: {path}: no patch has {args.min_tissue:.0%} tissue; "
            "the feature file is an empty bag",
            file=sys.stderr,
        )
    for path in summary.written:
        print(path)
    for path, reason in summary.failed.items():
        # slide errors already start with the path
        shown = reason if reason.startswith(str(path)) else f"{path}: {reason}"
        print(f"slidescope extract: error: {shown}", file=sys.stderr)
    if summary.failed and len(args.slide) > 1:
        print(
            f"slidescope extract: {len(summary.failed)} of {len(args.slide)} slides failed",
            file=sys.stderr,
        )
    return 1 if summary.failed else 0
