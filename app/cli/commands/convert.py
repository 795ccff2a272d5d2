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
COMPRESSIONS = ("zstd", "zstd-delta", "lz4", "jpeg", "none")
DEFAULT_COMPRESSION = "zstd"
DEFAULT_CHUNK = 512


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_slides(parser, many=False, help="the slide to convert")
    parser.add_argument("out", type=Path, metavar="OUT.zarr", help="the OME-Zarr to write")
    parser.add_argument(
        "--compression",
        choices=COMPRESSIONS,
        default=DEFAULT_COMPRESSION,
        help="zstd: lossless, every reader decodes it; zstd-delta: lossless, "
        "about a quarter smaller on H&E, slower to read, for zarr-python readers such as "
        "napari-ome-zarr; lz4: lossless, faster, larger; jpeg: lossy and small, but "
        "readers need imagecodecs' codecs registered (napari-ome-zarr alone cannot "
        "decode it); none: uncompressed",
    )
    parser.add_argument(
        "--chunk", type=int, default=DEFAULT_CHUNK, help="chunk width and height in px"
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
    from slidescope.app.slides.convert import convert_to_omezarr

    with open_slide(Path(args.slide), mpp=args.slide_mpp) as slide:
        job = convert_to_omezarr(
            slide, args.out, compression=args.compression, chunk=args.chunk, threads=args.threads
        )
        out = run_with_progress(job, "convert", quiet=args.quiet)
    print(f"{out}: OME-Zarr pyramid of {Path(args.slide).name} ({args.compression})")
    return 0
