"""``slidescope convert``: write a slide as an OME-Zarr (NGFF 0.4) pyramid, resumably."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidescope.app.cli.options import add_quiet, add_slide_mpp, add_slides

NAME = "convert"
HELP = (
    "Convert a slide to an OME-Zarr (NGFF 0.4) pyramid that napari and other NGFF readers "
    "open. Stopped half-way, running it again finishes the job."
)


# as in slidescope.app.slides.chunk_codec, which is not imported here so that the command
# line starts fast (tests/app/slides/test_convert.py checks they agree)
COMPRESSIONS = ("jpeg", "zstd", "zstd-delta", "lz4", "none")
LOSSLESS = "zstd"
LEVEL_STEPS, LEVEL_STEP = (2, 4), 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slides(parser, many=False, help="the slide to convert")
    parser.add_argument("out", type=Path, metavar="OUT.zarr", help="the OME-Zarr to write")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default=None,
        help="default: jpeg for a lossy source (JPEG, JPEG 2000, ...), zstd for a lossless "
        "one. jpeg: lossy; the source's JPEG tiles are stored as they are (no pixel "
        "changes, the source's size) and only missing levels are encoded; readers need "
        "imagecodecs' codecs, which SlideScope registers (napari-ome-zarr, ome-zarr-py "
        "where SlideScope is installed). zstd: lossless, every zarr reader decodes it, "
        "5-8x a JPEG source's size; zstd-delta: lossless, about a quarter smaller, "
        "slower to read; lz4: lossless, faster, larger; none: uncompressed",
    )
    choice.add_argument(
        "--lossless",
        action="store_const",
        const=LOSSLESS,
        dest="compression",
        help=f"keep every pixel exactly as decoded ({LOSSLESS}), whatever the source",
    )
    parser.add_argument(
        "--chunk",
        type=int,
        default=None,
        help="chunk width and height in px (default: the source's JPEG tile size where "
        "its tiles are stored as they are, else 512)",
    )
    parser.add_argument(
        "--level-step",
        type=int,
        choices=LEVEL_STEPS,
        default=LEVEL_STEP,
        help="levels the source lacks are made this many times smaller than the level "
        "above: 4 as in a scanner's 1x/4x/16x pyramid (the source's own levels are copied "
        "whatever their steps), or 2 for every 2x level and smoother zooming in viewers, "
        "at about half a level-0 decode more of CPU and a quarter more bytes below level 0",
    )
    add_slide_mpp(parser)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="worker threads (default: 2 to 4, as the machine has cores)",
    )
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.app.slides import open_slide
    from slidescope.app.slides.convert import conversion_layout, convert_to_omezarr

    with open_slide(Path(args.slide), mpp=args.slide_mpp) as slide:
        compression, chunk = conversion_layout(slide, args.compression, args.chunk)
        job = convert_to_omezarr(
            slide,
            args.out,
            compression=compression,
            chunk=chunk,
            threads=args.threads,
            level_step=args.level_step,
        )
        out = run_with_progress(job, "convert", quiet=args.quiet)
    print(f"{out}: OME-Zarr pyramid of {Path(args.slide).name} ({compression}, {chunk} px chunks)")
    return 0
