"""The bundled demo model on demo slides it never saw: slide accuracy and attention AUC.

Slides of unseen seeds (``SLIDESCOPE_DEMO_SEEDS`` of them, default 20, from seed 5000)
at each of four sizes from 10k to 30k px (``SLIDESCOPE_DEMO_SIZES``, comma list of
widths; height = 0.8 x width) are generated (or reused from ``SLIDESCOPE_DEMO_SLIDES``,
a folder), analysed with ``resources/demo_model.safetensors`` and scored: the predicted
class against "lesion if any lesion is planted", and, on slides with lesions, the ROC
AUC of the patch attention against the lesion outlines (median and minimum). The aim is
every slide right and a minimum AUC of 0.9.
"""

from __future__ import annotations

import os
import sys
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest

# slides are generated and analysed one after another: far longer than a unit test
pytestmark = [pytest.mark.benchmark, pytest.mark.timeout(4 * 3600)]

SEEDS = int(os.environ.get("SLIDESCOPE_DEMO_SEEDS", "20"))
FIRST_SEED = 5000
SIZES = [
    int(w) for w in os.environ.get("SLIDESCOPE_DEMO_SIZES", "10240,16384,22528,30720").split(",")
]
CHECKPOINT = Path(str(files("slidescope.resources"))) / "demo_model.safetensors"


def _slide(folder: Path, seed: int, width: int) -> Path:
    from slidescope.app.demo.generate import generate_demo_slide
    from slidescope.app.jobs import run_job

    path = folder / f"demo_{seed}_{width}.tiff"
    if not path.exists():
        run_job(generate_demo_slide(path, width, int(width * 0.8), seed=seed, mpp=0.25))
    return path


def test_demo_model_on_unseen_slides(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app"))
    from slidescope.app.analysis.inference import analyze_slide
    from slidescope.app.demo.generate import lesions_path_for
    from slidescope.app.jobs import run_job
    from slidescope.models.training.metrics import binary_auc as roc_auc
    from test_demo_model import lesion_patches

    folder = Path(os.environ.get("SLIDESCOPE_DEMO_SLIDES", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for width in SIZES:
        for seed in range(FIRST_SEED, FIRST_SEED + SEEDS):
            path = _slide(folder, seed, width)
            analysis = run_job(analyze_slide(path, CHECKPOINT, tmp_path / "cache", device="cpu"))
            positive = lesion_patches(
                analysis.coords, analysis.patch_size_level0, lesions_path_for(path)
            )
            truth = "lesion" if positive.any() else "normal"
            auc = (
                roc_auc(positive, analysis.attention)
                if 0 < positive.sum() < len(positive)
                else None
            )
            rows.append((width, seed, truth, analysis.predicted_class, int(positive.sum()), auc))
            print(f"{width} px seed {seed}: {truth:6s} -> {analysis.predicted_class:6s} "
                  f"lesion patches {positive.sum():4d}  attention AUC "
                  f"{'-' if auc is None else f'{auc:.3f}'}", flush=True)  # fmt: skip
    right = np.mean([truth == predicted for _, _, truth, predicted, _, _ in rows])
    aucs = np.array([auc for *_, auc in rows if auc is not None])
    print(f"\n{len(rows)} slides ({SEEDS} seeds x sizes {SIZES}): accuracy {right:.3f}; "
          f"attention AUC median {np.median(aucs):.3f}, minimum {aucs.min():.3f} "
          f"over {len(aucs)} lesion slides")  # fmt: skip
    assert right >= 0.9
    assert np.median(aucs) >= 0.9
