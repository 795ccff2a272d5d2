"""``slidescope tissue SLIDE --out DIR``: the tissue mask as PNG and GeoJSON polygons."""

from __future__ import annotations

import argparse

from slidescope.app.cli.options import add_out, add_roi, add_slide_mpp, add_slides

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
    for slide_path in args.slide:
        with open_slide(slide_path, mpp=args.slide_mpp) as slide:
            tissue = detect_tissue(slide, roi=roi, roi_mode=args.roi_mode)
            png, geojson = write_tissue_files(tissue, args.out, slide.identity.slide_id)
        print(f"{png}: {tissue.tissue_share:.1%} tissue\n{geojson}")
    return 0
