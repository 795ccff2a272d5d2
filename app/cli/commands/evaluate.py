"""``slidescope evaluate``: score a trained checkpoint on labelled test slides."""

from __future__ import annotations

import argparse
from pathlib import Path

from slidescope.app.cli.options import add_checkpoint, add_device, add_out, add_quiet

NAME = "evaluate"
HELP = "Evaluate a checkpoint on the test slides of a labels CSV (metrics, predictions, ROC)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``evaluate`` options."""
    add_checkpoint(parser)
    parser.add_argument("--features", required=True, type=Path, help="folder of <slide_id>.h5")
    parser.add_argument(
        "--labels", required=True, type=Path,
        help="labels CSV; its 'test' rows are scored (every row without a split column)",
    )  # fmt: skip
    add_out(parser, "metrics JSON to write")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap")
    add_device(parser)
    parser.add_argument(
        "--skip-missing", action="store_true", help="leave out slides without features"
    )
    add_quiet(parser)


def run(args: argparse.Namespace) -> int:
    """Evaluate and print the metrics with their 95 % intervals."""
    from slidescope.app.cli.progress import run_with_progress
    from slidescope.models.training.evaluate import evaluate

    job = evaluate(
        args.checkpoint,
        args.features,
        args.labels,
        args.out,
        resamples=args.bootstrap,
        seed=args.seed,
        device=args.device,
        skip_missing=args.skip_missing,
    )
    result = run_with_progress(job, "evaluate", args.quiet)
    for key, value in result.metrics.items():
        if isinstance(value, dict) and "value" in value:
            if value["value"] is None or value["value"] != value["value"]:  # None or NaN
                print(f"{key}: undefined (the test slides do not hold every class)")
                continue
            print(
                f"{key}: {value['value']:.4f} "
                f"(95% CI {value['ci_low']:.4f}-{value['ci_high']:.4f})"
            )
    print(f"metrics: {result.metrics_path}")
    print(f"predictions: {result.predictions_path}")
    if result.roc_path is not None:
        print(f"ROC curve: {result.roc_path}")
    return 0
