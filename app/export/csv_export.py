"""Patch scores as a CSV table, one row per patch.

Columns: ``x``, ``y`` (level-0 top-left), ``size`` (level-0 px), ``attention``,
``hard_attention``, ``masked`` (0/1) and ``prob_<class>`` per class — the model's raw
outputs, comparable between slides. The header is the first line, so any CSV reader takes
the file as it is; the slide identity, mpp and display choices go beside it as JSON
(``scores.csv`` -> ``scores.json``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.models.files import write_text_atomic


def score_columns(analysis: SlideAnalysis) -> list[str]:
    """The CSV's column names, in order."""
    return [
        "x",
        "y",
        "size",
        "attention",
        "hard_attention",
        "masked",
        *(f"prob_{c}" for c in analysis.class_names),
    ]


def write_scores_csv(path: str | Path, analysis: SlideAnalysis, metadata: dict[str, Any]) -> Path:
    """Write every patch's scores (atomically).

    Parameters
    ----------
    path : path
        The ``.csv`` to write.
    analysis : SlideAnalysis
    metadata : dict
        Written as JSON beside the CSV (same stem, ``.json``).
    """
    n = analysis.n_patches
    table = np.column_stack(
        [
            analysis.coords.astype(np.float64).reshape(n, 2),
            np.full(n, analysis.patch_size_level0, np.float64),
            analysis.attention.astype(np.float64),
            analysis.hard_attention.astype(np.float64),
            analysis.masked.astype(np.float64),
            analysis.instance_probs.astype(np.float64).reshape(n, len(analysis.class_names)),
        ]
    )
    n_probs = len(analysis.class_names)
    row_format = ",".join(["%d", "%d", "%d", "%.6g", "%.6g", "%d", *(["%.6g"] * n_probs)])
    lines = [
        ",".join(score_columns(analysis)),
        *(row_format % tuple(row) for row in table.tolist()),
    ]
    text = "\n".join(lines) + "\n"
    path = Path(path)
    write_text_atomic(metadata_path(path), json.dumps(metadata, indent=1) + "\n")
    write_text_atomic(path, text)
    return path


def metadata_path(csv_path: str | Path) -> Path:
    """Where the provenance JSON of a scores CSV lives."""
    return Path(csv_path).with_suffix(".json")


def read_scores_csv(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, column -> values) of a CSV written by :func:`write_scores_csv`."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    sidecar = metadata_path(path)
    meta: dict[str, Any] = json.loads(sidecar.read_text("utf-8")) if sidecar.exists() else {}
    header = lines[0].split(",")
    rows = [line.split(",") for line in lines[1:] if line]
    data = np.array(rows, dtype=np.float64).reshape(len(rows), len(header))
    return meta, {name: data[:, i] for i, name in enumerate(header)}
