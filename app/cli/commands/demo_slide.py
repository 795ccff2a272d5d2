"""``slidescope demo-slide``: write a procedural H&E demo slide and its lesion outlines."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidescope.app.cli.options import add_quiet

NAME = "demo-slide"
HELP = (
    "Write a deterministic, procedural H&E-like demo slide (pyramidal JPEG TIFF) and its "
    "ground-truth lesion outlines (OUT.lesions.geojson). By default the slide is "
    "50,000 x 40,000 px at 0.25 µm/px, about 195 MB on disk and a few minutes to write; "
    "pass e.g. --width 8192 --height 6144 for a small one."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from slidescope.app.demo.generate import DEFAULT_HEIGHT, DEFAULT_MPP, DEFAULT_WIDTH

    parser.add_argument("out", type=Path, metavar="OUT.tiff", help="the slide to write")
    parser.add_argument("--width", type=int, default=DEFAULT_WIDTH, help="level-0 width in px")
    parser.add_argument("--height", type=int, default=DEFAULT_HEIGHT, help="level-0 height in px")
    parser.add_argument(
        "--seed", type=int, default=0, help="same seed, same slide; ~40%% have no lesion"
    )
    parser.add_argument(
        "--mpp", type=float, default=DEFAULT_MPP, help="microns per pixel at level 0"
    )
    parser.add_argument(
        "--lesion-kind", choices=["solid", "glandular"], default="solid",
        help="solid: sheets of crowded dark nuclei (the bundled model's kind); glandular: "
        "rings of cells around pale lumens (a kind the bundled model never saw)",
    )  # fmt: skip
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.app.demo.generate import generate_demo_slide

    job = generate_demo_slide(
        args.out,
        width=args.width,
        height=args.height,
        seed=args.seed,
        mpp=args.mpp,
        lesion_kind=args.lesion_kind,
    )
    slide = run_with_progress(job, "demo slide", quiet=args.quiet)
    print(
        f"{slide.path}: {slide.width} x {slide.height} px at {slide.mpp} µm/px, "
        f"{len(slide.level_dimensions)} levels, {slide.lesion_count} lesion(s) "
        f"outlined in {slide.lesions_path}"
    )
    return 0
