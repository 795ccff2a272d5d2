"""The options several commands share, declared once so they read the same everywhere.

A command adds them with ``add_slides(parser)``, ``add_out(parser, ...)``,
``add_slide_mpp(parser)``, ``add_device(parser)`` and ``add_quiet(parser)``; every
sub-command's ``--help`` uses :class:`HelpFormatter`, which shows each option's default.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from slidescope.resources import BUNDLED_MODEL, bundled_model


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows ``(default: X)`` after an option's help, unless the default says nothing.

    ``None`` and ``False`` defaults (an option that is off unless given) are left out, and
    so is a default the help already names with ``%(default)s``.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        if default is None or default is False or default == [] or default == argparse.SUPPRESS:
            return action.help
        return super()._get_help_string(action)


def add_slides(
    parser: argparse.ArgumentParser,
    *,
    many: bool = True,
    help: str | None = None,
) -> None:
    """The positional slide argument(s): ``slide`` (one or more unless ``many=False``)."""
    parser.add_argument(
        "slide",
        nargs="+" if many else None,
        metavar="SLIDE",
        help=help
        or ("slide file(s) or OME-Zarr folder(s)" if many else "a slide file or OME-Zarr folder"),
    )


def add_out(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    help: str,
    *,
    required: bool = True,
    metavar: str | None = None,
) -> None:
    """``--out``: where the command writes (a folder or a file, as ``help`` says)."""
    parser.add_argument("--out", required=required, type=Path, metavar=metavar, help=help)


def add_slide_mpp(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--slide-mpp``: level-0 microns per pixel for slides that do not say (or say wrong)."""
    parser.add_argument(
        "--slide-mpp",
        type=float,
        default=None,
        metavar="MPP",
        help="the slides' microns per pixel, when the files do not say it (or say it wrong)",
    )


def add_device(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--device``: where torch runs (``auto`` takes CUDA when there is a GPU)."""
    parser.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA when a GPU is there, else CPU), cpu, cuda or cuda:N",
    )


def add_quiet(parser: argparse.ArgumentParser) -> None:
    """``--quiet``: no progress bar."""
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def add_roi(parser: argparse.ArgumentParser, help: str) -> None:
    """``--roi`` and ``--roi-mode``: a GeoJSON region of interest and how it meets the tissue."""
    parser.add_argument("--roi", type=Path, help=help)
    parser.add_argument(
        "--roi-mode",
        choices=("intersect", "replace"),
        default="intersect",
        help="intersect: tissue inside the ROI only; replace: the ROI is the tissue",
    )


def checkpoint_path(text: str) -> Path:
    """An argparse type: a checkpoint file, or :data:`BUNDLED_MODEL` for the bundled model.

    A file of that name in the working folder is still the file; an install without the
    bundled model keeps the name, and loading says the file is missing.
    """
    path = Path(text)
    if text == BUNDLED_MODEL and not path.exists():
        return bundled_model() or path
    return path


def add_checkpoint(parser: argparse.ArgumentParser, *flags: str) -> None:
    """The model to run: ``--checkpoint`` (and other ``flags``), a file or the bundled model."""
    parser.add_argument(
        "--checkpoint",
        *flags,
        dest="checkpoint",
        required=True,
        type=checkpoint_path,
        help=f"the model checkpoint (.safetensors), or {BUNDLED_MODEL}: the demo model "
        "SlideScope ships",
    )
