"""A synthetic hard-instance task on which MHIM-MIL's claim can be checked.

Positive bags carry a few very salient "easy" instances (a large shift along one
direction) and more, subtle "hard" ones (a small shift along another); negative bags are
background. In training (and validation) most positive bags hold the easy instances; at
test time they are often absent, so a model that learnt only the easy evidence misses
those positives. MHIM-MIL (Tang et al., ICCV 2023) claims that masking the teacher's
most salient instances makes the student learn the hard ones: the test AUC of MHIM
should then beat plain training on the positives without easy instances.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np


@dataclass(frozen=True)
class HardTask:
    """Shape of the task (defaults: small enough for many seeds on two cores)."""

    dim: int = 64
    n_train: int = 64
    n_val: int = 24
    n_test: int = 80
    min_instances: int = 30
    max_instances: int = 60
    n_easy: int = 2
    n_hard: int = 6
    easy_strength: float = 6.0
    hard_strength: float = 2.0
    easy_share_train: float = 0.8
    easy_share_test: float = 0.3


def _bag(
    rng: np.random.Generator, task: HardTask, positive: bool, with_easy: bool, dirs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One bag and its instances' kinds (0 background, 1 hard, 2 easy)."""
    n = int(rng.integers(task.min_instances, task.max_instances + 1))
    x = rng.normal(size=(n, task.dim))
    kinds = np.zeros(n, np.int8)
    if positive:
        chosen = rng.choice(n, task.n_easy + task.n_hard, replace=False)
        x[chosen[task.n_easy :]] += task.hard_strength * dirs[1]
        kinds[chosen[task.n_easy :]] = 1
        if with_easy:
            x[chosen[: task.n_easy]] += task.easy_strength * dirs[0]
            kinds[chosen[: task.n_easy]] = 2
        else:
            # Without the easy ones the bag still holds n_easy more hard instances, so
            # only the kind of evidence changes, not its amount.
            x[chosen[: task.n_easy]] += task.hard_strength * dirs[1]
            kinds[chosen[: task.n_easy]] = 1
    return x.astype(np.float32), kinds


def hard_instance_task(
    folder: Path, seed: int, task: HardTask = HardTask(), kinds: list[np.ndarray] | None = None
) -> tuple[Path, Path, list[np.ndarray], np.ndarray, np.ndarray]:
    """Write the training / validation bags and return the test bags in memory.

    ``kinds``, if given, receives each test bag's instance kinds (0 background, 1 hard,
    2 easy).

    Returns
    -------
    (feature folder, labels CSV, test bags, test labels, test bags' easy flags)
    """
    rng = np.random.default_rng(seed)
    dirs = np.linalg.qr(rng.normal(size=(task.dim, 2)))[0].T  # two orthonormal directions
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(task.n_train + task.n_val):
        positive = i % 2 == 1
        x, _ = _bag(rng, task, positive, rng.random() < task.easy_share_train, dirs)
        with h5py.File(folder / f"b{i:03d}.h5", "w") as handle:
            handle.create_dataset("features", data=x)
            handle.attrs["extractor"] = "synthetic"
        rows.append((f"b{i:03d}", int(positive), "train" if i < task.n_train else "val"))
    labels = folder.parent / f"{folder.name}.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide_id", "label", "split"])
        writer.writerows(rows)
    y = np.arange(task.n_test) % 2
    easy = (y == 1) & (rng.random(task.n_test) < task.easy_share_test)
    made = [_bag(rng, task, bool(p), bool(e), dirs) for p, e in zip(y, easy)]
    if kinds is not None:
        kinds.extend(k for _, k in made)
    return folder, labels, [x for x, _ in made], y, easy
