"""One prediction rule: evaluate and export give a slide the same label.

The checkpoint's threshold is set on the far side of the slide's positive probability,
so that the most probable class (argmax) and the checkpoint's rule disagree: a face
that used argmax would give the other label.
"""

from __future__ import annotations

import csv

from slidescope.app.analysis.inference import analyze_slide
from slidescope.app.export.batch import ExportTask, export_one
from slidescope.app.export.slide_export import ExportOptions
from slidescope.app.jobs import run_job
from slidescope.models.training.evaluate import evaluate


def test_evaluate_and_export_label_a_slide_alike(
    cohort, abmil_checkpoint_writer, tmp_path
) -> None:
    folder, _ = cohort
    slide = folder / "a.tiff"
    cache = tmp_path / "cache"
    plain = abmil_checkpoint_writer(tmp_path / "plain.safetensors")
    first = run_job(analyze_slide(slide, plain, cache, device="cpu"))
    positive = float(first.probabilities[1])
    argmax_label = first.predicted_class
    # the rule says the other class than argmax does
    threshold = positive + 0.01 if positive >= 0.5 else positive - 0.01
    checkpoint = abmil_checkpoint_writer(tmp_path / "ruled.safetensors", threshold)

    outcome = run_job(
        export_one(
            ExportTask(
                slide=str(slide),
                checkpoint=str(checkpoint),
                out_dir=str(tmp_path / "export"),
                options=ExportOptions(kinds=("attention",), overlay_format="none"),
                cache_dir=str(cache),
                device="cpu",
            )
        )
    )
    assert outcome.predicted_class != argmax_label

    other = run_job(analyze_slide(folder / "b.tiff", plain, cache, device="cpu"))
    labels = tmp_path / "labels.csv"
    labels.write_text(
        f"slide_id,label\n{first.identity.slide_id},tumour\n{other.identity.slide_id},normal\n"
    )
    features = next((cache / "features").iterdir())
    result = run_job(
        evaluate(checkpoint, features, labels, tmp_path / "eval.json", resamples=5, device="cpu")
    )
    with result.predictions_path.open(newline="") as handle:
        rows = {row["slide_id"]: row for row in csv.DictReader(handle)}
    assert rows[first.identity.slide_id]["predicted"] == outcome.predicted_class
