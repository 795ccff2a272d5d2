"""The options every cohort command shares (``--workers``, ``--scheduler``, ``--json``).

Also how a cohort command reports: notes and the progress bar on stderr, one outcome per
line (or one JSON document with ``--json``) on stdout, failures named by slide.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any


def workers_value(text: str) -> int | str:
    """``auto`` or a number of worker processes (0: one after another)."""
    if text == "auto":
        return text
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number, not {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the number of workers cannot be negative")
    return value


def add_batch_arguments(parser: argparse.ArgumentParser) -> None:
    """``--workers``, ``--scheduler`` and ``--json``."""
    parser.add_argument(
        "--workers",
        type=workers_value,
        default="auto",
        help="worker processes of a local Dask cluster; 0 = one slide after another in a "
        "child process; auto (default) = serial unless the slides are enough work for a "
        "cluster (judged by their size against this machine's cores)",
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="a running Dask scheduler (tcp://host:8786) whose workers see the same files",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the outcomes as one JSON document on stdout",
    )


def resolve_workers(args: argparse.Namespace, slides: Sequence[str | Path]) -> int:
    """The number of workers to use (``auto`` decided by the work)."""
    from slidescope.app.batch.runner import choose_workers

    return choose_workers(slides) if args.workers == "auto" else int(args.workers)


def note(message: str) -> None:
    """A note for the user on stderr (stdout stays machine-readable)."""
    print(message, file=sys.stderr)


def report(command: str, outcomes: Sequence[Any], summary: Path, as_json: bool) -> int:
    """Print the outcomes; exit status 1 when a slide failed."""
    from slidescope.app.batch.outcomes import count_outcomes, describe_counts

    counts = count_outcomes(outcomes)
    if as_json:
        document = {
            "counts": counts,
            "summary": str(summary),
            "slides": [asdict(o) for o in outcomes],
        }
        print(json.dumps(document, indent=1))
    else:
        print(f"{describe_counts(counts)}; summary in {summary}")
    # one line per failed slide, as every command's errors (the slide's path leads)
    for outcome in outcomes:
        if outcome.status == "failed":
            print(f"slidescope {command}: error: {outcome.error}", file=sys.stderr)
    if counts["failed"] and len(outcomes) > 1:
        print(
            f"slidescope {command}: {counts['failed']} of {len(outcomes)} slides failed",
            file=sys.stderr,
        )
    return 1 if counts["failed"] or counts["not run"] else 0
