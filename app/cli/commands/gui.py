"""``slidescope gui [SLIDE_OR_PROJECT...]``: the desktop window (also ``slidescope`` alone)."""

from __future__ import annotations

import argparse

NAME = "gui"
HELP = "Open the SlideScope desktop window (optionally with slides or a project)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "paths", nargs="*", metavar="PATH", help="slide files, or a project folder, to open"
    )


def run(args: argparse.Namespace) -> int:
    from slidescope.app.cli.commands._window import require_window

    require_window()
    from slidescope.app.ui.app import run_window

    return run_window(list(args.paths))
