"""``slidescope tissue SLIDE --out DIR``: the tissue mask as PNG and GeoJSON polygons."""

from __future__ import annotations

import argparse
import sys

from slidescope.app.cli.options import add_out, add_roi, add_slide_mpp, add_slides
from slidescope.app.errors import SlideScopeError

NAME = "tissue"
HELP = "Detect tissue on a slide; write <slide_id>.tissue.png and <slide_id>.tissue.geojson."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slides(parser)
    add_out(parser, "output folder")
    add_slide_mpp(parser)
    add_roi(parser, "GeoJSON region of interest (level-0 px) to restrict the mask")


def run(args: argparse.Namespace) -> int:
    from slidescope.app.analysis.tissue import detect_tissue, write_tissue_files
    from slidescope.app.annotations.geojson import read_geojson
    from slidescope.app.slides import open_slide

    roi = read_geojson(args.roi) if args.roi else None
    failed = 0
    for slide_path in args.slide:
        # a bad slide is reported in one line and the others go on
        try:
            with open_slide(slide_path, mpp=args.slide_mpp) as slide:
                tissue = detect_tissue(slide, roi=roi, roi_mode=args.roi_mode)
                png, geojson = write_tissue_files(tissue, args.out, slide.identity.slide_id)
        except SlideScopeError as error:
            failed += 1
            shown = str(error) if str(error).startswith(str(slide_path)) else f"{slide_path}: {error}"
            print(f"slidescope tissue: error: {shown}", file=sys.stderr)
            continue
        print(f"{png}: {tissue.tissue_share:.1%} tissue\n{geojson}")
    if failed and len(args.slide) > 1:
        print(
            f"slidescope tissue: {failed} of {len(args.slide)} slides failed", file=sys.stderr
        )
    return 1 if failed else 0
