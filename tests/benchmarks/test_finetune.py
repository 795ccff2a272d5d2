"""Fine-tuning the bundled model on a lesion kind it never saw: before / after, and speed.

The benchmark plays the pathologist. Demo slides of a second lesion kind (glandular: rings
of cells around pale lumens) are generated with their true outlines; the outlines of the
fine-tuning slides are their annotations (class ``Tumor``, read as the model's ``lesion``;
the rest of an annotated slide and every lesion-free slide is ``normal``). The bundled
model (``resources/demo_model.safetensors``, solid lesions only) is fine-tuned on 10
slides, and measured on unseen slides, 10 of each kind (6 with lesions, 4 without):

- attention AUC: on each slide with lesions, the AUC of the model's attention against
  "the patch lies mostly inside a true outline", averaged over the slides;
- slide AUC: the AUC of P(lesion) against "the slide has a lesion".

Once with the annotations, once with the slide labels alone (no regions): the difference
is the value of annotating. The aims (issue 10): glandular >= 0.9 after, solid not down by
more than 0.02. Speed: seconds of the fine-tuning job (features cached) as a ratio to a
plain ``train`` of the same model, epochs and slides in the same run.

Slides are kept in ``$SLIDESCOPE_FINETUNE_BENCH`` when set (about 15 minutes to make
the first time on 2 cores).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from finetune_data import FEATURES, BenchSlide, prepare
from slidescope.app.analysis.checkpoint_features import identity_of_features
from slidescope.app.jobs import run_job
from slidescope.app.training.annotation_input import load_regions
from slidescope.app.training.finetune import FinetuneRequest, TrainingSlide, finetune
from slidescope.app.training.patch_labels import label_patches
from slidescope.models.checkpoints import load_checkpoint
from slidescope.models.features import read_coords, read_features
from slidescope.models.training.config import TrainingConfig
from slidescope.models.training.finetune_settings import FinetuneSettings
from slidescope.models.training.metrics import binary_auc
from slidescope.models.training.trainer import train
from slidescope.resources import __file__ as resources_init

pytestmark = pytest.mark.benchmark

BASE = Path(resources_init).with_name("demo_model.safetensors")
EPOCHS = 15


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> tuple[Path, list[BenchSlide], list[BenchSlide]]:
    folder = Path(os.environ.get("SLIDESCOPE_FINETUNE_BENCH") or tmp_path_factory.mktemp("ft"))
    train_slides, test_slides = prepare(folder)
    return folder, train_slides, test_slides


def _request(folder: Path, slides: list[BenchSlide], out: Path, regions: bool) -> FinetuneRequest:
    training = [
        TrainingSlide(
            s.path,
            None if regions and s.label == "lesion" else s.label,
            s.outlines if regions and s.label == "lesion" else None,
        )
        for s in slides
    ]
    return FinetuneRequest(
        base=BASE, slides=training, out=out, cache_dir=folder / "cache",
        settings=FinetuneSettings(epochs=EPOCHS, device="cpu", seed=0),
        class_map={"Tumor": "lesion"}, outside_class="normal" if regions else None,
    )  # fmt: skip


def _measure(checkpoint: Path, folder: Path, slides: list[BenchSlide]) -> dict[str, float]:
    """Attention AUC and slide AUC per lesion kind."""
    loaded = load_checkpoint(checkpoint)
    model, lesion = loaded.model, loaded.meta.class_names.index("lesion")
    scores: dict[str, float] = {}
    attention_aucs: dict[str, list[float]] = {"glandular": [], "solid": []}
    slide_prob: dict[str, float] = {}
    for slide in slides:
        features = folder / "cache" / FEATURES / f"{slide.slide_id}.h5"
        with torch.no_grad():
            out = model(torch.from_numpy(read_features(features)))
        slide_prob[slide.slide_id] = float(torch.softmax(out.logits, -1)[lesion])
        if slide.kind == "normal":
            continue
        regions, _ = load_regions(slide.outlines, identity_of_features(features))
        truth = label_patches(read_coords(features), 256, regions, ["Tumor"]).labels == 0
        attention_aucs[slide.kind].append(binary_auc(truth, out.attention.numpy()))
    normals = [s for s in slides if s.kind == "normal"]
    for kind in ("glandular", "solid"):
        members = [s for s in slides if s.kind == kind] + normals
        y = np.array([s.label == "lesion" for s in members])
        p = np.array([slide_prob[s.slide_id] for s in members])
        scores[f"{kind} attention AUC"] = float(np.nanmean(attention_aucs[kind]))
        scores[f"{kind} slide AUC"] = binary_auc(y, p)
    return scores


def test_finetune_before_after_table(bench) -> None:
    folder, train_slides, test_slides = bench
    work = folder / "runs"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    table = {"before": _measure(BASE, folder, test_slides)}
    for name, regions in (("after, annotations", True), ("after, slide labels alone", False)):
        out = work / f"{'annotated' if regions else 'labels'}.safetensors"
        run_job(finetune(_request(folder, train_slides, out, regions)))
        table[name] = _measure(out, folder, test_slides)
    lines = [f"{'':28s}" + "".join(f"{k:>24s}" for k in table["before"])]
    for name, row in table.items():
        lines.append(f"{name:28s}" + "".join(f"{v:24.3f}" for v in row.values()))
    print("\n" + "\n".join(lines))
    (folder / "finetune_table.json").write_text(json.dumps(table, indent=1))
    after, before = table["after, annotations"], table["before"]
    assert after["glandular attention AUC"] >= 0.9, table
    assert after["glandular slide AUC"] >= 0.9, table
    assert after["solid slide AUC"] >= before["solid slide AUC"] - 0.02, table
    assert after["solid attention AUC"] >= before["solid attention AUC"] - 0.02, table


def test_finetune_seconds_against_plain_training(bench) -> None:
    folder, train_slides, _ = bench
    work = folder / "speed"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    torch.set_num_threads(1)
    start = time.perf_counter()
    run_job(finetune(_request(folder, train_slides, work / "ft.safetensors", True)))
    finetune_s = time.perf_counter() - start
    labels = work / "labels.csv"
    labels.write_text(
        "slide_id,label\n" + "".join(f"{s.slide_id},{s.label}\n" for s in train_slides)
    )
    config = TrainingConfig(
        features=folder / "cache" / FEATURES, labels=labels, out=work / "plain.safetensors",
        epochs=EPOCHS, patience=0, device="cpu", val_fraction=0.25,
    )  # fmt: skip
    start = time.perf_counter()
    run_job(train(config))
    train_s = time.perf_counter() - start
    ratio = finetune_s / train_s
    print(f"\nfine-tune {finetune_s:.1f} s, plain train {train_s:.1f} s: ratio {ratio:.2f}")
    assert finetune_s < 60, finetune_s
    assert ratio < 5, ratio
