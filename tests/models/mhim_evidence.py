"""Does MHIM help? One seed of plain vs MHIM vs MHIM+AEM, and paired summaries over seeds.

Used by ``tests/benchmarks/test_mhim_evidence.py``; each seed runs in its own process
(``python mhim_evidence.py MODEL DATASET SEED WORKDIR`` prints one JSON line) so seeds
run side by side on several cores.

The three arms of a seed share everything but the method, as in the paper: the plain
model is trained first; MHIM starts its teacher from that same plain model
(``teacher_init``, the student's instance embedding copied: ``init_stu_type=fc``) and
trains as many epochs again; MHIM+AEM adds attention entropy maximisation. Each arm keeps
the epoch of best validation AUC (MHIM's from ``min_epochs`` on). The figure is the test
AUC; on the hard-instance task also the AUC over the positives *without* easy instances
(against every negative), where the paper's claim should show.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

EPOCHS = 20
#: the models, each in the reference configuration at a size that fits 64-230-d features
MODELS: dict[str, dict[str, Any]] = {
    "abmil": {"hidden_dim": 128, "attention_dim": 64},
    "transmil": {"hidden_dim": 128, "n_heads": 4, "n_landmarks": 64},
}
#: MHIM on these small bags: the top 5 % by teacher attention masked (the easy instances
#: are ~3 % of a positive bag), decayed by the reference's cosine schedule; no random
#: masking (the ICCV version); consistency weight 0.1 and teacher momentum 0.9999 -> 1.
MHIM = {
    "mask_ratio_high": 0.05,
    # every top instance masked; SLIDESCOPE_EVIDENCE_HIGH_RANDOM=0.5 masks a random half
    # of them each step, as the reference's r_hr on CAMELYON16
    "mask_ratio_high_random": float(os.environ.get("SLIDESCOPE_EVIDENCE_HIGH_RANDOM", "1.0")),
    "mask_ratio_random": 0.0,
    "recycle": False,
    "consistency_weight": 0.1,
    "momentum": 0.9999,
    "momentum_final": 1.0,
    "init_student": "fc",
}
AEM = 0.1


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, score)) if len(np.unique(y)) == 2 else math.nan


def _scores(checkpoint: Path, bags: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each bag's positive-class probability, and its instances' attention."""
    import torch
    from slidescope.models.checkpoints import load_checkpoint

    model = load_checkpoint(checkpoint).model.eval()
    scores, attention = [], []
    with torch.no_grad():
        for b in bags:
            out = model(torch.from_numpy(b))
            scores.append(float(torch.softmax(out.logits, 0)[1]))
            attention.append(out.attention.numpy())
    return np.array(scores), attention


def _why(
    attention: dict[str, list[np.ndarray]], kinds: list[np.ndarray], y: np.ndarray
) -> dict[str, float]:
    """Where the evidence is looked for, on the test positives.

    - ``teacher_hits_easy``: share of the easy instances that the top ``mask_ratio_high``
      of the plain model's attention (the teacher MHIM starts from) holds: what MHIM masks.
    - ``<arm>_on_hard``: attention mass on the hard instances of positives without easy
      ones (what the model must find when the easy evidence is absent).
    - ``<arm>_on_easy``: attention mass on the easy instances where they are present.
    """
    result: dict[str, float] = {}
    hits = []
    for att, kind in zip(attention["plain"], kinds):
        if (kind == 2).any():
            top = np.argsort(att)[::-1][: max(1, math.ceil(MHIM["mask_ratio_high"] * len(att)))]
            hits.append(float((kind[top] == 2).sum() / (kind == 2).sum()))
    result["teacher_hits_easy"] = float(np.mean(hits))
    for arm, atts in attention.items():
        hard = [a[k == 1].sum() for a, k, t in zip(atts, kinds, y) if t and not (k == 2).any()]
        easy = [a[k == 2].sum() for a, k in zip(atts, kinds) if (k == 2).any()]
        result[f"{arm}_on_hard"] = float(np.mean(hard))
        result[f"{arm}_on_easy"] = float(np.mean(easy))
    return result


def _train(folder: Path, labels: Path, out: Path, model: str, **kwargs: Any) -> Path:
    from slidescope.models.jobs import run_job
    from slidescope.models.training.config import MHIMConfig, TrainingConfig
    from slidescope.models.training.trainer import train

    mhim = MHIMConfig(**kwargs.pop("mhim", {}))
    config = TrainingConfig(
        features=folder, labels=labels, out=out, model=model, model_config="reference",
        model_kwargs=MODELS[model], epochs=EPOCHS, patience=0, lr=2e-3, balance="none",
        seed=0, resume=False, mhim=mhim, **kwargs,
    )  # fmt: skip
    return run_job(train(config)).path


#: the hard task, and the same with an easy instance in every training positive (the
#: "why" experiment: there plain training never needs the hard evidence)
HARD_TASKS = {"hard": {}, "hard-all-easy": {"easy_share_train": 1.0}}


def _data(dataset: str, seed: int, work: Path, kinds: list[np.ndarray] | None = None):  # type: ignore[no-untyped-def]
    if dataset in HARD_TASKS:
        from hard_instance_bags import HardTask, hard_instance_task

        task = HardTask(**HARD_TASKS[dataset])
        return hard_instance_task(work / "feats", seed, task, kinds)
    import h5py
    from mil_benchmarks import ELEPHANT, MUSK1, benchmark_mimic

    shape = {"musk1": MUSK1, "elephant": ELEPHANT}[dataset]
    folder, labels = benchmark_mimic(work / "feats", shape, seed=seed, test_share=0.3)
    rows = [line.split(",") for line in labels.read_text().split()[1:]]
    test = [r for r in rows if r[2] == "test"]
    train = [r for r in rows if r[2] != "test"]
    # The trainer holds out its own validation share of the "train" rows.
    labels.write_text("slide_id,label\n" + "".join(f"{r[0]},{r[1]}\n" for r in train))
    bags = []
    for r in test:
        with h5py.File(folder / f"{r[0]}.h5") as handle:
            bags.append(handle["features"][:].astype(np.float32))
    y = np.array([int(r[1]) for r in test])
    return folder, labels, bags, y, np.ones(len(y), bool)


def run_seed(model: str, dataset: str, seed: int, work: Path) -> dict[str, float]:
    """Test AUC of the three arms (and on hard-only positives) for one seed."""
    import torch

    torch.set_num_threads(1)
    kinds: list[np.ndarray] = []
    folder, labels, bags, y, easy = _data(dataset, seed, work, kinds)
    plain = _train(folder, labels, work / "plain.safetensors", model)
    arms = {
        "plain": plain,
        "mhim": _train(
            folder, labels, work / "mhim.safetensors", model, method="mhim",
            teacher_init=plain, min_epochs=EPOCHS // 2, mhim=dict(MHIM),
        ),
        "mhim_aem": _train(
            folder, labels, work / "aem.safetensors", model, method="mhim", aem=AEM,
            teacher_init=plain, min_epochs=EPOCHS // 2, mhim=dict(MHIM),
        ),
    }  # fmt: skip
    result: dict[str, float] = {}
    hard = ~easy  # negatives and the positives without easy instances
    attention = {}
    for arm, path in arms.items():
        scores, attention[arm] = _scores(path, bags)
        result[arm] = _auc(y, scores)
        if dataset in HARD_TASKS:
            result[f"{arm}_hard"] = _auc(y[hard], scores[hard])
    if dataset in HARD_TASKS:
        result.update(_why(attention, kinds, y))
    return result


def paired(a: list[float], b: list[float]) -> dict[str, float]:
    """Mean of the paired differences ``b - a`` with its 95 % t confidence interval."""
    from scipy import stats

    d = np.asarray(b) - np.asarray(a)
    d = d[np.isfinite(d)]
    mean = float(d.mean())
    half = float(stats.t.ppf(0.975, len(d) - 1) * d.std(ddof=1) / math.sqrt(len(d)))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(d)}


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    name, data, number, folder = sys.argv[1:5]
    print(json.dumps(run_seed(name, data, int(number), Path(folder))))
