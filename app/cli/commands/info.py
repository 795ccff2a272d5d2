"""``slidescope info SLIDE``: what a slide is — format, size, resolution, levels, images."""

from __future__ import annotations

import argparse
import json

from slidescope.app.cli.options import add_slide_mpp, add_slides

NAME = "info"
HELP = "Show a slide's format, level-0 size, microns per pixel, levels and associated images."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slides(
        parser, many=False, help="a slide file (.svs .tiff .ndpi .mrxs ...) or OME-Zarr folder"
    )
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")
    add_slide_mpp(parser)


def run(args: argparse.Namespace) -> int:
    from slidescope.app.slides import open_slide
    from slidescope.app.slides.summary import summarize_slide

    with open_slide(args.slide, mpp=args.slide_mpp) as slide:
        summary = summarize_slide(slide)
    print(json.dumps(summary.to_dict(), indent=2) if args.json else summary.as_text())
    return 0
