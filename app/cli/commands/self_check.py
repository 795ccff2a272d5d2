"""``slidescope self-check`` (also ``slidescope --self-check``): prove an install works, headless.

It needs no screen and no network, which is what an installed bundle on a fresh machine
can be asked to show: the demo slide is generated (once, in the user cache folder), the
bundled demo model analyses it, one heatmap is exported, and each step is printed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "self-check"
HELP = (
    "Check this installation without a screen: generate the demo slide, run the bundled "
    "demo model on it and export one heatmap; prints each step, exits 0 when all work."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the heatmap goes (default: a self-check folder in the user cache)",
    )


def run(args: argparse.Namespace) -> int:
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.app.selfcheck import self_check

    report = run_with_progress(self_check(args.out), "self-check", quiet=True)
    for line in report.lines():
        print(line)
    return 0 if report.ok else 1
