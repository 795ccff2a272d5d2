"""The ``slidescope`` command line.

Every sub-command is a module in :mod:`slidescope.app.cli.commands` that defines ``NAME``,
``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``. Modules are discovered, so a
new command is a new file. Heavy imports belong inside ``run`` so that ``--help`` and
the commands that do not need torch or Qt start fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Container, Sequence

from slidescope.app.cli import commands
from slidescope.app.cli.options import HelpFormatter
from slidescope.app.errors import SlideScopeError
from slidescope.models.errors import ModelError


def build_parser(detailed: Container[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser with every discovered sub-command (names in ``parser.commands``).

    ``detailed``: the commands whose own options are declared (None: all). ``main`` declares
    only the command it runs: some options' help is built from what it lists (``train``'s
    models come from the model registry, which imports torch), and ``slidescope --help``
    or ``slidescope info`` need none of that.
    """
    parser = argparse.ArgumentParser(
        prog="slidescope",
        description="Whole-slide images, MIL models and heatmaps. "
        "Without a command, opens the desktop window.",
    )
    parser.add_argument("--version", action="version", version=f"slidescope {_version()}")
    parser.add_argument(
        "--self-check",
        action="store_true",
        help="check this installation headless (same as the self-check command)",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    names: set[str] = set()
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        sub = subparsers.add_parser(
            module.NAME, help=module.HELP, description=module.HELP, formatter_class=HelpFormatter
        )
        if detailed is None or module.NAME in detailed:
            module.add_arguments(sub)
        sub.set_defaults(_run=module.run)
        names.add(module.NAME)
    parser.set_defaults(commands=frozenset(names))
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("slidescope")
    except PackageNotFoundError:  # running from a source tree that is not installed
        return "unknown"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit status."""
    words = list(sys.argv[1:] if argv is None else argv)
    names = build_parser(detailed=()).get_default("commands")
    if words and words[0] == "--self-check":
        words = ["self-check", *words[1:]]
    elif not words:
        words = ["gui"]  # `slidescope` alone opens the window
    elif words[0] not in names and not words[0].startswith("-"):
        words = ["open", *words]  # `slidescope slide.svs` opens the slide
    args = build_parser(detailed={words[0]}).parse_args(words)
    try:
        return int(args._run(args) or 0)
    except (SlideScopeError, ModelError) as error:
        # one line: the message names the file or the setting and what to do
        text = " ".join(str(error).split())
        print(f"slidescope {args.command}: error: {text}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`slidescope info --json | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        print(f"slidescope {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
