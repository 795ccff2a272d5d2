"""``slidescope demo [--out DIR]``: the demo slide with the bundled model's heatmaps, in the window."""

from __future__ import annotations

import argparse

NAME = "demo"
HELP = (
    "Open the window on a generated demo slide (made in DIR on first use) and show the "
    "bundled demo model's attention and hard-instance heatmaps."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", default="demo-output", metavar="DIR", help="where the demo slide and results go"
    )
    parser.add_argument("--seed", type=int, default=7, help="demo slide seed")
    parser.add_argument(
        "--screenshot",
        metavar="PNG",
        help="save the window as PNG once the heatmaps are shown, then close it "
        "(for machines without a screen: run under xvfb-run)",
    )


def run(args: argparse.Namespace) -> int:
    from slidescope.app.cli.commands._window import require_window

    require_window()
    from slidescope.app.ui.demo_window import run_demo

    return run_demo(args.out, args.seed, screenshot=args.screenshot)
