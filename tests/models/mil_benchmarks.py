"""Mimics of the classic public MIL benchmarks, written as a converter from .mat/.csv would.

Musk1 / Musk2 (Dietterich et al., 1997): 166-d, 92 / 102 bags, 2-40 / 1-1044 instances per
bag, integer-valued features of very different ranges. Fox / Tiger / Elephant (Andrews et
al., 2002): 230-d, 200 bags (100 positive), 2-13 instances, sparse non-negative colour /
texture features. No network here, so the generator reproduces their shapes and
statistics, not their values: a positive bag holds at least one instance drawn near one
of a few positive "concepts"; every other instance is background. The features are then
scaled per dimension by factors spanning four orders of magnitude and offset, so an
unstandardised model would fail.

Each feature file holds ONLY a ``features`` dataset (no ``coords``, no attributes), and
labels may be written as ``0/1``, ``-1/1`` or strings.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np


@dataclass(frozen=True)
class BenchmarkShape:
    """The published shape of a benchmark."""

    name: str
    dim: int
    n_bags: int
    n_positive: int
    min_instances: int
    max_instances: int
    sparse: bool = False
    n_classes: int = 2


MUSK1 = BenchmarkShape("musk1", 166, 92, 47, 2, 40)
MUSK2 = BenchmarkShape("musk2", 166, 102, 39, 1, 1044)
FOX = BenchmarkShape("fox", 230, 200, 100, 2, 13, sparse=True)
TIGER = BenchmarkShape("tiger", 230, 200, 100, 1, 13, sparse=True)
ELEPHANT = BenchmarkShape("elephant", 230, 200, 100, 2, 13, sparse=True)
#: a multi-class set in the same spirit (class c > 0: one instance of concept c)
MULTI = BenchmarkShape("multi", 64, 120, 80, 1, 20, n_classes=3)


def _bag_sizes(shape: BenchmarkShape, rng: np.random.Generator) -> np.ndarray:
    # Musk2-like sets have a heavy tail of bag sizes; draw log-uniformly, then pin the
    # published extremes so the smallest and largest bags are really present.
    low, high = shape.min_instances, shape.max_instances
    sizes = np.exp(rng.uniform(np.log(low), np.log(high + 1), size=shape.n_bags)).astype(int)
    sizes = np.clip(sizes, low, high)
    sizes[0], sizes[-1] = low, high
    return rng.permutation(sizes)


def write_features_only(path: Path, features: np.ndarray) -> Path:
    """An HDF5 file with nothing but ``features`` (as a .mat/.csv converter writes it)."""
    with h5py.File(path, "w") as handle:
        handle.create_dataset("features", data=features.astype(np.float32))
    return path


def benchmark_mimic(
    folder: Path,
    shape: BenchmarkShape = MUSK1,
    label_style: str = "01",
    seed: int = 0,
    separation: float = 4.0,
    test_share: float | None = None,
) -> tuple[Path, Path]:
    """Write a benchmark mimic: ``<bag>.h5`` files and a labels CSV.

    Parameters
    ----------
    folder : Path
        Where the feature files go (created); the CSV is written beside it.
    shape : BenchmarkShape
        Which benchmark to mimic.
    label_style : str
        ``"01"`` (0 / 1), ``"pm1"`` (-1 / 1) or ``"names"`` (``negative`` / ``positive``;
        ``class_k`` for multi-class).
    seed : int
    separation : float
        Distance (in background standard deviations) of the concepts from the background.
    test_share : float or None
        When set, a ``split`` column marks this share of bags (stratified) ``test`` and
        the rest ``train``; otherwise the CSV has no split column.

    Returns
    -------
    folder, labels_csv : Path
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    n_concepts = max(shape.n_classes - 1, 1) * 2
    concepts = rng.normal(size=(n_concepts, shape.dim))
    concepts *= separation / np.linalg.norm(concepts, axis=1, keepdims=True)
    # Musk's integer features have spreads from ~1 to a few hundred; the sparse image
    # features of Fox & co span several orders of magnitude.
    low = -2.0 if shape.sparse else 0.0
    scale = 10.0 ** rng.uniform(low, low + 2.5, size=shape.dim)
    offset = rng.normal(scale=50.0, size=shape.dim)
    labels = np.zeros(shape.n_bags, dtype=int)
    positives = rng.choice(shape.n_bags, shape.n_positive, replace=False)
    labels[positives] = 1 + np.arange(shape.n_positive) % max(shape.n_classes - 1, 1)
    sizes = _bag_sizes(shape, rng)
    names = []
    for i, (label, n) in enumerate(zip(labels, sizes)):
        x = rng.normal(size=(n, shape.dim))
        if label > 0:
            # At least one witness; a few more in larger bags (Musk's conformations).
            k = int(rng.integers(1, max(2, n // 4) + 1))
            witnesses = rng.choice(n, min(k, n), replace=False)
            pair = 2 * (label - 1) + rng.integers(0, 2, size=len(witnesses))
            x[witnesses] = rng.normal(size=(len(witnesses), shape.dim)) * 0.5 + concepts[pair]
        if shape.sparse:
            # Colour/texture histograms: non-negative and mostly zero.
            x = np.maximum(x, 0.0)
            values = x * np.abs(scale)
        else:
            values = np.round(x * scale + offset)
        name = f"{shape.name}_{i:04d}"
        write_features_only(folder / f"{name}.h5", values)
        names.append(name)
    csv_path = folder.parent / f"{folder.name}_{label_style}.csv"
    test = set()
    if test_share is not None:
        for value in np.unique(labels):
            rows = rng.permutation(np.flatnonzero(labels == value))
            test.update(rows[: max(1, round(len(rows) * test_share))].tolist())
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide_id", "label"] + (["split"] if test_share is not None else []))
        for i, (name, label) in enumerate(zip(names, labels)):
            row = [name, _label_text(int(label), label_style, shape.n_classes)]
            if test_share is not None:
                row.append("test" if i in test else "train")
            writer.writerow(row)
    return folder, csv_path


def _label_text(label: int, style: str, n_classes: int) -> str:
    if style == "pm1" and n_classes == 2:
        return "1" if label else "-1"
    if style == "names":
        if n_classes == 2:
            return "positive" if label else "negative"
        return f"class_{label}"
    return str(label)
