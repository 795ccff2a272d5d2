"""``slidescope open SLIDE...``: the desktop window with these slides."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidescope.app.slides.errors import SlideNotFoundError

NAME = "open"
HELP = "Open slides (or a project folder) in the SlideScope window."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="SLIDE", help="slide files or a project")


def run(args: argparse.Namespace) -> int:
    from slidescope.app.cli.commands._window import require_window

    # the user's own mistake first: a missing file is named even where no window could open
    for path in args.paths:
        if not Path(path).exists():
            raise SlideNotFoundError(path, "no such file or folder")
    require_window()
    from slidescope.app.ui.app import run_window

    return run_window(list(args.paths))
