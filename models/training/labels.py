"""The labels CSV of a training set, and how slides are split for training.

Classification: ``slide_id,label[,split]``; survival: ``slide_id,time,event[,split]``.
``split`` is one of train / val / test. ``slide_id`` is the feature file's stem.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from slidescope.models.errors import ModelError

SPLITS = ("train", "val", "test")


class LabelsError(ModelError):
    """The labels CSV cannot be read or does not say what training needs."""


@dataclass
class LabelTable:
    """The rows of a labels CSV.

    Attributes
    ----------
    slide_ids : list of str
    splits : list of str or None
        The ``split`` column, or None per row when the CSV has none.
    task : str
        ``classification`` or ``survival``.
    class_names : list of str
        Classification: the sorted unique labels (numeric labels in numeric order).
    targets : ndarray
        Classification: (n,) int64 class index per row.
    times, events : ndarray
        Survival: (n,) float64 follow-up time and (n,) int64 event (1) / censored (0).
    """

    path: Path
    slide_ids: list[str]
    splits: list[str | None]
    task: str = "classification"
    class_names: list[str] = field(default_factory=list)
    targets: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    events: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return len(self.slide_ids)

    @property
    def has_split(self) -> bool:
        return any(s is not None for s in self.splits)

    def subset(self, rows: list[int] | np.ndarray) -> LabelTable:
        """The table restricted to ``rows`` (class names are kept)."""
        rows = [int(r) for r in rows]
        return LabelTable(
            path=self.path,
            slide_ids=[self.slide_ids[r] for r in rows],
            splits=[self.splits[r] for r in rows],
            task=self.task,
            class_names=list(self.class_names),
            targets=self.targets[rows] if len(self.targets) else self.targets,
            times=self.times[rows] if len(self.times) else self.times,
            events=self.events[rows] if len(self.events) else self.events,
        )

    def rows_of_split(self, split: str) -> list[int]:
        return [i for i, s in enumerate(self.splits) if s == split]


def _sort_class_names(labels: list[str]) -> list[str]:
    unique = sorted(set(labels))
    try:
        return sorted(unique, key=float)
    except ValueError:
        return unique


def read_labels(
    path: str | Path, task: str = "classification", class_names: list[str] | None = None
) -> LabelTable:
    """Read a labels CSV.

    Parameters
    ----------
    path : str or Path
    task : {"classification", "survival"}
    class_names : list of str, optional
        The classes of a trained model (evaluation): labels are mapped onto them, and a
        label outside them is an error.

    Raises
    ------
    LabelsError
        Naming the file, the row and what is wrong.
    """
    path = Path(path)
    columns, rows = _read_rows(path)
    needed = ["slide_id", "label"] if task == "classification" else ["slide_id", "time", "event"]
    absent = [c for c in needed if c not in columns]
    if absent:
        raise LabelsError(
            f"{path}: missing column(s) {', '.join(absent)}; a {task} labels CSV has "
            f"{','.join(needed)}[,split] (found: {','.join(columns) or 'nothing'})"
        )
    rows = [r for r in rows if r.get("slide_id")]
    if not rows:
        raise LabelsError(f"{path}: no rows with a slide_id")
    slide_ids = [r["slide_id"] for r in rows]
    duplicates = sorted(s for s, n in Counter(slide_ids).items() if n > 1)
    if duplicates:
        raise LabelsError(f"{path}: slide(s) listed twice: {', '.join(duplicates[:10])}")
    splits: list[str | None] = []
    for line, r in enumerate(rows, start=2):
        split = r.get("split", "").lower() or None
        if split is not None and split not in SPLITS:
            raise LabelsError(
                f"{path}, row {line}: split {r['split']!r} is not one of train, val, test"
            )
        splits.append(split)
    table = LabelTable(path=path, slide_ids=slide_ids, splits=splits, task=task)
    if task == "classification":
        labels = [r["label"] for r in rows]
        empty = [slide_ids[i] for i, label in enumerate(labels) if not label]
        if empty:
            raise LabelsError(f"{path}: no label for slide(s) {', '.join(empty[:10])}")
        names = list(class_names) if class_names is not None else _sort_class_names(labels)
        index = {name: i for i, name in enumerate(names)}
        unknown = sorted({label for label in labels if label not in index})
        if unknown:
            raise LabelsError(
                f"{path}: label(s) {', '.join(unknown)} are not classes of the model "
                f"({', '.join(names)})"
            )
        table.class_names = names
        table.targets = np.array([index[label] for label in labels], dtype=np.int64)
    elif task == "survival":
        table.times = np.array(
            [_survival_time(path, line, r["time"]) for line, r in enumerate(rows, start=2)],
            dtype=np.float64,
        )
        table.events = np.array(
            [_event(path, line, r["event"]) for line, r in enumerate(rows, start=2)],
            dtype=np.int64,
        )
    else:
        raise LabelsError(f"unknown task {task!r}; use classification or survival")
    return table


def _read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """The header and rows of a UTF-8 CSV; any other encoding is an error naming the line."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise LabelsError(f"{path}: cannot be read ({error})") from error
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise LabelsError(
            f"{path}, line {line}: not UTF-8 text (byte 0x{data[error.start]:02x}); save the "
            "labels as a UTF-8 CSV (in a spreadsheet: 'CSV UTF-8')"
        ) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise LabelsError(
            f"{path}, line {line}: holds NUL characters (UTF-16 or a binary file?); save the "
            "labels as a UTF-8 CSV"
        )
    try:
        reader = csv.DictReader(text.splitlines())
        columns = [c.strip() for c in reader.fieldnames or []]
        rows = [
            {
                (k or "").strip(): (v or "").strip() if isinstance(v, str) else ""
                for k, v in r.items()
            }
            for r in reader
        ]
    except csv.Error as error:
        raise LabelsError(f"{path}: not a readable CSV ({error})") from None
    return columns, rows


def _survival_time(path: Path, line: int, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise LabelsError(
            f"{path}, row {line}: time {text!r} must be a finite number greater than 0"
        )
    return value


def _event(path: Path, line: int, text: str) -> int:
    if text not in ("0", "1", "0.0", "1.0"):
        raise LabelsError(f"{path}, row {line}: event {text!r} must be 0 (censored) or 1")
    return int(float(text))


def stratified_split(
    strata: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split row indices into (kept, held out), holding out ``fraction`` of every stratum.

    Each stratum with at least two rows gives ``max(1, round(n * fraction))`` rows, so
    validation sees every class; the choice is a seeded permutation.
    """
    rng = np.random.default_rng(seed)
    held: list[int] = []
    for value in np.unique(strata):
        rows = np.flatnonzero(strata == value)
        if len(rows) < 2:
            continue
        n_held = min(len(rows) - 1, max(1, round(len(rows) * fraction)))
        held.extend(rng.permutation(rows)[:n_held].tolist())
    held_arr = np.array(sorted(held), dtype=np.int64)
    kept = np.setdiff1d(np.arange(len(strata)), held_arr)
    return kept, held_arr


def stratified_folds(strata: np.ndarray, k: int, seed: int) -> list[np.ndarray]:
    """Assign rows to ``k`` folds, dealing each stratum round-robin after a seeded shuffle."""
    if k < 2:
        raise LabelsError(f"cross-validation needs at least 2 folds, got {k}")
    if len(strata) < k:
        raise LabelsError(f"{len(strata)} slides cannot be split into {k} folds")
    rng = np.random.default_rng(seed)
    folds: list[list[int]] = [[] for _ in range(k)]
    start = 0
    for value in np.unique(strata):
        rows = rng.permutation(np.flatnonzero(strata == value))
        for j, row in enumerate(rows):
            folds[(start + j) % k].append(int(row))
        # Continue dealing where the last stratum stopped, so fold sizes stay even.
        start = (start + len(rows)) % k
    return [np.array(sorted(f), dtype=np.int64) for f in folds]


def survival_strata(table: LabelTable, n_bins: int = 4) -> np.ndarray:
    """Strata for splitting a survival set: event status x time quantile bin."""
    if len(table) == 0:
        return np.zeros(0, np.int64)
    edges = np.quantile(table.times, np.linspace(0, 1, n_bins + 1)[1:-1])
    bins = np.searchsorted(edges, table.times, side="right")
    return table.events * n_bins + bins


def quantile_time_bins(times: np.ndarray, events: np.ndarray, n_bins: int = 4) -> list[float]:
    """Inner edges of ``n_bins`` discrete-time bins at the quantiles of event times.

    Uses the uncensored times (all times when there is no event), as Zadeh & Schmid.
    """
    reference = times[events == 1] if np.any(events == 1) else times
    if len(reference) == 0:
        raise LabelsError("survival training needs at least one slide with a time")
    edges = np.quantile(reference, np.linspace(0, 1, n_bins + 1)[1:-1])
    return [float(e) for e in edges if math.isfinite(e)]


def time_to_bin(times: np.ndarray, edges: list[float]) -> np.ndarray:
    """The discrete-time bin of each time (0 .. len(edges))."""
    return np.searchsorted(np.asarray(edges), times, side="right").astype(np.int64)
