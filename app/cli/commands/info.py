"""``slidescope info SLIDE``: what a slide is — format, size, resolution, levels, images."""

from __future__ import annotations

import argparse
import json
from typing import Any

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

    with open_slide(args.slide, mpp=args.slide_mpp) as slide:
        summary = slide_summary(slide)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(_as_text(summary))
    return 0


def slide_summary(slide: Any) -> dict[str, Any]:
    """The facts ``info`` prints, as JSON-ready values."""
    mpp = slide.mpp
    associated = {}
    for name in slide.associated_images:
        width = slide.properties.get(f"openslide.associated.{name}.width")
        height = slide.properties.get(f"openslide.associated.{name}.height")
        associated[name] = [int(width), int(height)] if width and height else None
    return {
        "path": str(slide.path),
        "slide_id": slide.identity.slide_id,
        "format": slide.format,
        "dimensions": list(slide.dimensions),
        "mpp": [mpp[0], mpp[1]] if mpp else None,
        "level_count": len(slide.levels),
        "level_dimensions": [list(d) for d in slide.level_dimensions],
        "downsamples": slide.downsamples,
        "associated_images": associated,
    }


def _as_text(summary: dict[str, Any]) -> str:
    width, height = summary["dimensions"]
    mpp = summary["mpp"]
    lines = [
        f"slide:      {summary['path']}",
        f"format:     {summary['format']}",
        f"size:       {width} x {height} px (level 0)",
        "mpp:        "
        + (f"{mpp[0]:.4g} x {mpp[1]:.4g} µm/px" if mpp else "unknown (pass --slide-mpp)"),
        f"levels:     {summary['level_count']}",
    ]
    for i, ((w, h), ds) in enumerate(zip(summary["level_dimensions"], summary["downsamples"])):
        lines.append(f"  level {i}: {w} x {h} px, downsample {ds:.4g}")
    images = summary["associated_images"]
    if images:
        lines.append("associated images:")
        for name, size in images.items():
            lines.append(f"  {name}" + (f": {size[0]} x {size[1]} px" if size else ""))
    else:
        lines.append("associated images: none")
    return "\n".join(lines)
