"""Synthetic bags written as HDF5 feature files, for the training and feature tests.

Positive bags hide a few planted positive instances (shifted along one direction) among
many negatives, so the standard MIL assumption holds and a working model reaches a high
AUC in a few epochs.
"""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np


def write_feature_file(
    path: Path,
    features: np.ndarray,
    extractor: str | None = "synthetic",
    complete: bool = True,
    metadata: bool = True,
) -> Path:
    """Write one feature file as the contract says (or as CLAM does, ``metadata=False``)."""
    n, dim = features.shape
    with h5py.File(path, "w") as handle:
        handle.create_dataset(
            "features", data=features.astype(np.float32), maxshape=(None, dim), chunks=True
        )
        coords = np.stack([np.arange(n) * 256, np.zeros(n)], axis=1).astype(np.int64)
        dataset = handle.create_dataset("coords", data=coords, maxshape=(None, 2), chunks=True)
        dataset.attrs["patch_size"] = 256
        dataset.attrs["patch_level"] = 0
        if metadata:
            handle.attrs.update(
                format_version=1,
                extractor=extractor or "",
                feature_dim=dim,
                patch_size=256,
                patch_size_level0=512,
                target_mpp=0.5,
                slide_mpp=[0.25, 0.25],
                read_level=0,
                slide_id=path.stem,
                slide_fingerprint="0" * 16,
                slide_width=n * 256,
                slide_height=256,
                complete=complete,
            )
    return path


def planted_bags(
    folder: Path,
    n_bags: int = 60,
    n_instances: int = 100,
    dim: int = 32,
    n_classes: int = 2,
    seed: int = 0,
    extractor: str = "synthetic",
    planted_share: float = 0.08,
    splits: tuple[float, float] | None = (0.6, 0.2),
    offset: float = 5.0,
    strength: float = 4.0,
) -> tuple[Path, Path]:
    """Write ``n_bags`` feature files and a labels CSV; returns (feature folder, CSV).

    Class c > 0 bags hide ``planted_share`` instances shifted by ``strength`` along direction
    c-1; class 0 bags are pure noise. Features get a large common offset, so the input
    standardisation matters. ``splits`` gives the train and val shares (rest: test), or
    None for a CSV without a split column.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    directions = rng.normal(size=(max(n_classes - 1, 1), dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    rows = []
    labels = np.arange(n_bags) % n_classes
    rng.shuffle(labels)
    for i, label in enumerate(labels):
        n = int(rng.integers(int(n_instances * 0.7), int(n_instances * 1.3)))
        x = rng.normal(size=(n, dim))
        if label > 0:
            k = max(1, round(n * planted_share))
            x[rng.choice(n, k, replace=False)] += strength * directions[label - 1]
        slide_id = f"slide_{i:03d}"
        write_feature_file(folder / f"{slide_id}.h5", x + offset, extractor=extractor)
        rows.append((slide_id, f"class_{label}" if n_classes > 2 else str(label)))
    csv_path = folder.parent / f"{folder.name}_labels.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide_id", "label"] + (["split"] if splits else []))
        for i, (slide_id, label) in enumerate(rows):
            if splits:
                share = i / n_bags
                split = "train" if share < splits[0] else "val" if share < sum(splits) else "test"
                writer.writerow([slide_id, label, split])
            else:
                writer.writerow([slide_id, label])
    return folder, csv_path


def survival_bags(
    folder: Path, n_bags: int = 60, n_instances: int = 80, dim: int = 16, seed: int = 0
) -> tuple[Path, Path]:
    """Bags whose planted-instance share sets the hazard: more planted, earlier events."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    csv_path = folder.parent / f"{folder.name}_survival.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide_id", "time", "event", "split"])
        for i in range(n_bags):
            share = rng.uniform(0.0, 0.3)
            x = rng.normal(size=(n_instances, dim))
            k = round(n_instances * share)
            x[:k] += 3.0 * direction
            slide_id = f"case_{i:03d}"
            write_feature_file(folder / f"{slide_id}.h5", x)
            time = float(rng.exponential(1.0 / (0.2 + 5 * share)))
            event = int(rng.random() < 0.8)
            split = "train" if i < 0.6 * n_bags else "val" if i < 0.8 * n_bags else "test"
            writer.writerow([slide_id, f"{time:.4f}", event, split])
    return folder, csv_path
