"""Slide labels as the ``slide_id,label`` CSV that training reads (see DESIGN "Features")."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from pathlib import Path

from slidescope.app.errors import SlideScopeError
from slidescope.models.files import write_text_atomic


class LabelsError(SlideScopeError):
    """A labels CSV cannot be read."""


def read_labels_csv(path: str | Path) -> dict[str, str]:
    """``slide_id -> label`` from a CSV with (at least) ``slide_id`` and ``label`` columns.

    Empty labels are left out; other columns (e.g. ``split``) are ignored.

    Raises
    ------
    LabelsError
        When the file cannot be read or lacks the two columns.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise LabelsError(f"{path}: cannot be read as a CSV file ({error})") from error
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "slide_id" not in columns or "label" not in columns:
        raise LabelsError(
            f"{path}: needs a header with 'slide_id' and 'label' columns (found {columns or 'none'})"
        )
    labels: dict[str, str] = {}
    for row in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        if row.get("slide_id") and row.get("label"):
            labels[row["slide_id"]] = row["label"]
    return labels


def write_labels_csv(path: str | Path, labels: Iterable[tuple[str, str]]) -> Path:
    """Write ``slide_id,label`` rows atomically; returns the path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["slide_id", "label"])
    writer.writerows(labels)
    return write_text_atomic(path, buffer.getvalue())
