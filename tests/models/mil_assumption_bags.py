"""Algorithmic unit tests of the standard MIL assumption (after Raff & Holt, NeurIPS 2023).

Standard MIL: a bag is positive if and only if it holds at least one positive instance.
Each scenario gives a training set that a model respecting the assumption solves, plus a
test set on which a model that learnt something the assumption forbids fails:

* ``presence`` (single-concept test): every training negative carries a "poison"
  instance that positives never carry, so "poison present -> negative" separates the
  training bags perfectly. At test time the poison moves into the positive bags: only a
  model that learnt "witness present -> positive" still ranks the bags right.
* ``frequency`` (false-frequency reliance): both classes carry instances of a distractor
  concept, negatives many (half the bag), positives few; at test time the shares swap. A
  model that counts distractors fails; the witness still decides.
* ``multi_concept``: positives carry a witness of concept A or of concept B (never both)
  and negatives carry poison; at test time positives carry A, B or both, together with
  the poison, and negatives none. The model must learn both concepts as positive
  evidence, each on its own.

Bags are small (8-16 instances of 16 features) so that training takes seconds.
"""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np

DIM = 16
SCENARIOS = ("presence", "frequency", "multi_concept")


def _concepts(rng: np.random.Generator) -> dict[str, np.ndarray]:
    # Orthogonal directions, so the concepts are separable from each other and from
    # the background.
    basis, _ = np.linalg.qr(rng.normal(size=(DIM, DIM)))
    return {"A": 4.0 * basis[0], "B": 4.0 * basis[1], "poison": 4.0 * basis[2]}


def _bag(
    rng: np.random.Generator, concepts: dict[str, np.ndarray], parts: dict[str, int]
) -> np.ndarray:
    n = int(rng.integers(8, 17))
    n = max(n, sum(parts.values()) + 1)
    x = rng.normal(size=(n, DIM))
    rows = rng.permutation(n)
    start = 0
    for name, count in parts.items():
        x[rows[start : start + count]] += concepts[name]
        start += count
    return x


def _parts(scenario: str, positive: bool, test: bool, i: int) -> dict[str, int]:
    if scenario == "presence":
        if positive:
            return {"A": 1, "poison": 1} if test else {"A": 1}
        return {} if test else {"poison": 1}
    if scenario == "frequency":
        many, few = 6, 1
        if positive:
            return {"A": 1, "B": many if test else few}
        return {"B": few if test else many}
    if scenario == "multi_concept":
        if positive:
            if test:
                which = [{"A": 1}, {"B": 1}, {"A": 1, "B": 1}][i % 3]
                return {**which, "poison": 1}
            return {"A": 1} if i % 2 else {"B": 1}
        return {} if test else {"poison": 1}
    raise ValueError(f"unknown scenario {scenario!r}; one of {SCENARIOS}")


def scenario_bags(
    scenario: str, n_bags: int, test: bool, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n_bags`` bags (half positive) of a scenario's training or test distribution."""
    rng = np.random.default_rng(seed)
    concepts = _concepts(np.random.default_rng(1234))
    labels = np.arange(n_bags) % 2
    bags = [
        _bag(rng, concepts, _parts(scenario, bool(y), test, i // 2)) for i, y in enumerate(labels)
    ]
    return bags, labels


def write_training_set(
    folder: Path, scenario: str, n_train: int = 40, n_val: int = 12, seed: int = 0
) -> Path:
    """Training and validation bags of ``scenario`` as HDF5 files; returns the labels CSV.

    Validation bags come from the training distribution (as a user's would).
    """
    folder.mkdir(parents=True, exist_ok=True)
    bags, labels = scenario_bags(scenario, n_train + n_val, test=False, seed=seed)
    csv_path = folder.parent / f"{folder.name}.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide_id", "label", "split"])
        for i, (x, y) in enumerate(zip(bags, labels)):
            name = f"bag_{i:03d}"
            with h5py.File(folder / f"{name}.h5", "w") as h5:
                h5.create_dataset("features", data=x.astype(np.float32))
            writer.writerow([name, int(y), "train" if i < n_train else "val"])
    return csv_path
