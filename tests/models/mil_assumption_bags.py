"""Raff & Holt's algorithmic unit tests of the MIL assumption (NeurIPS 2023), as bags.

A model that keeps the MIL assumption decides a bag by *which* concepts it holds, never by
an instance that only argues against a class, nor by how often a concept repeats. Each
test gives training bags that such a model can learn, and test bags on which a model that
learnt a shortcut the assumption forbids ranks the bags wrong (test AUC near or below 0.5):

* ``poison`` (single-concept standard MIL): positives hold one instance of concept A;
  in training every negative holds a *poison* instance, never seen in a positive, so
  "poison present -> negative" separates the training bags as well as A does. At test
  time the poison is in the positives (beside A) and the negatives hold only background.
* ``threshold`` (threshold MIL, two concepts): a bag is positive only with concept A *and*
  concept B (one instance each); negatives hold only A, only B, or neither. Same
  distribution at test time. A model that takes a single concept's presence for the
  label cannot do better than about 0.75.
* ``false_frequency``: positives hold A once and B once; negatives hold one of A or B,
  once in training and 35 to 44 copies at test time. A model that counts (mean or
  attention pooling) mistakes the repeated single concept for the pair.

Instances are 16-d: background ``N(0, I)``; a concept instance is background plus 4 times
a unit direction (A, B and the poison orthogonal). Bags hold 8 to 16 background
instances plus their concept instances.
"""

from __future__ import annotations

import csv
from pathlib import Path

import h5py
import numpy as np

DIM = 16
SCENARIOS = ("poison", "threshold", "false_frequency")
#: copies of the single concept in a negative false-frequency test bag (Raff & Holt: 35-44)
FREQUENCY_COPIES = (35, 44)


def _concepts() -> dict[str, np.ndarray]:
    # orthogonal directions: concepts separable from each other and from the background
    basis, _ = np.linalg.qr(np.random.default_rng(1234).normal(size=(DIM, DIM)))
    return {"A": 4.0 * basis[0], "B": 4.0 * basis[1], "poison": 4.0 * basis[2]}


def _bag(rng: np.random.Generator, parts: dict[str, int]) -> np.ndarray:
    concepts = _concepts()
    background = int(rng.integers(8, 17))
    rows = [rng.normal(size=(background, DIM))]
    for name, count in parts.items():
        rows.append(rng.normal(size=(count, DIM)) + concepts[name])
    x = np.concatenate(rows)
    return x[rng.permutation(len(x))]


def bag_parts(
    scenario: str, positive: bool, test: bool, i: int, rng: np.random.Generator
) -> dict[str, int]:
    """The concept instances of bag ``i`` (name -> count) of a scenario's distribution."""
    if scenario == "poison":
        if positive:
            return {"A": 1, "poison": 1} if test else {"A": 1}
        return {} if test else {"poison": 1}
    if scenario == "threshold":
        if positive:
            return {"A": 1, "B": 1}
        return [{"A": 1}, {"B": 1}, {}][i % 3]
    if scenario == "false_frequency":
        if positive:
            return {"A": 1, "B": 1}
        copies = int(rng.integers(FREQUENCY_COPIES[0], FREQUENCY_COPIES[1] + 1)) if test else 1
        return {"A": copies} if i % 2 else {"B": copies}
    raise ValueError(f"unknown scenario {scenario!r}; one of {SCENARIOS}")


def scenario_bags(
    scenario: str, n_bags: int, test: bool, seed: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """``n_bags`` bags (half positive) of a scenario's training or test distribution."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_bags) % 2
    bags = [
        _bag(rng, bag_parts(scenario, bool(y), test, i // 2, rng)) for i, y in enumerate(labels)
    ]
    return bags, labels


def write_bags(folder: Path, bags: list[np.ndarray], labels: np.ndarray, split: str) -> Path:
    """Bags as ``bag_NNN.h5`` feature files in ``folder`` and a labels CSV beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder.parent / f"{folder.name}.csv"
    with csv_path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slide_id", "label", "split"])
        for i, (x, y) in enumerate(zip(bags, labels)):
            name = f"bag_{i:03d}"
            with h5py.File(folder / f"{name}.h5", "w") as h5:
                h5.create_dataset("features", data=x.astype(np.float32))
            writer.writerow([name, int(y), split])
    return csv_path


def write_training_set(
    folder: Path, scenario: str, n_train: int = 40, n_val: int = 12, seed: int = 0
) -> Path:
    """Training and validation bags of ``scenario`` as HDF5 files; returns the labels CSV.

    Validation bags come from the training distribution (as a user's would).
    """
    bags, labels = scenario_bags(scenario, n_train + n_val, test=False, seed=seed)
    csv_path = write_bags(folder, bags, labels, "train")
    rows = csv_path.read_text().splitlines()
    # the last n_val bags validate
    fixed = rows[:1] + [
        row if i < n_train else row.rsplit(",", 1)[0] + ",val" for i, row in enumerate(rows[1:])
    ]
    csv_path.write_text("\n".join(fixed) + "\n")
    return csv_path


def train_and_test(
    folder: Path,
    scenario: str,
    model: str,
    model_kwargs: dict | None = None,
    epochs: int | None = None,
    seed: int = 0,
    n_test: int = 60,
    overrides: dict | None = None,
) -> tuple[float, float]:
    """Train ``model`` with the project's trainer on a scenario; (train AUC, test AUC).

    Settings are the trainer's defaults (as ``slidescope train``) unless ``epochs`` or
    ``model_kwargs`` or ``overrides`` (more :class:`TrainingConfig` fields) say otherwise. The train AUC is on fresh bags of the training
    distribution (did it learn?), the test AUC on the test distribution (did it learn
    what the MIL assumption allows?).
    """
    import torch
    from slidescope.models.checkpoints import load_checkpoint
    from slidescope.models.jobs import run_job
    from slidescope.models.training.config import TrainingConfig
    from slidescope.models.training.metrics import binary_auc
    from slidescope.models.training.trainer import train

    labels = write_training_set(folder / scenario, scenario, seed=seed)
    settings: dict = {} if epochs is None else {"epochs": epochs}
    settings.update(overrides or {})
    config = TrainingConfig(
        features=folder / scenario,
        labels=labels,
        out=folder / f"{scenario}_{model}.safetensors",
        model=model,
        model_kwargs=dict(model_kwargs or {}),
        device="cpu",
        seed=seed,
        **settings,
    )
    result = run_job(train(config))
    trained = load_checkpoint(result.path).model.eval()

    def auc(test: bool, bag_seed: int) -> float:
        bags, y = scenario_bags(scenario, n_test, test=test, seed=bag_seed)
        with torch.no_grad():
            scores = [
                float(torch.softmax(trained(torch.from_numpy(b).float()).logits, 0)[1])
                for b in bags
            ]
        return binary_auc(y == 1, np.array(scores))

    return auc(False, 1000 + seed), auc(True, 2000 + seed)
