"""The fine-tuning job: each bad input refused before anything is written; lineage recorded."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from slidescope.app.demo.generate import generate_demo_slide, lesions_path_for
from slidescope.app.demo.layout import planned_lesion_count
from slidescope.app.jobs import Progress, run_job
from slidescope.app.training.finetune import (
    FinetuneInputError,
    FinetuneRequest,
    TrainingSlide,
    finetune,
    prepare_finetune,
)
from slidescope.app.training.patch_labels import LABELS_ONLY_CAUTION
from slidescope.models.checkpoints import read_meta
from slidescope.models.devices import DeviceMemoryError
from slidescope.models.training.finetune_settings import FinetuneSettings
from slidescope.resources import __file__ as resources_init
from training_bags import write_feature_file

BASE = Path(resources_init).with_name("demo_model.safetensors")


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> dict[str, Path]:
    """Two small (6144 x 6144) demo slides: one with a glandular lesion (outlines as class lesion), one without."""
    folder = tmp_path_factory.mktemp("ft-slides")
    made: dict[str, Path] = {}
    seed = 40
    while len(made) < 2:
        kind = "lesion" if planned_lesion_count(seed) else "normal"
        if kind not in made:
            path = folder / f"{kind}.tiff"
            run_job(generate_demo_slide(path, 6144, 6144, seed, lesion_kind="glandular"))
            outlines = json.loads(lesions_path_for(path).read_text())
            if kind == "lesion" and not outlines["features"]:
                seed += 1
                continue
            for feature in outlines["features"]:
                feature["properties"]["classification"] = {"name": "lesion"}
            (folder / f"{kind}.geojson").write_text(json.dumps(outlines))
            made[kind] = path
        seed += 1
    return made


def _request(tmp_path: Path, slides: list[TrainingSlide], **kwargs) -> FinetuneRequest:
    options = {"settings": FinetuneSettings(epochs=1, device="cpu")} | kwargs
    return FinetuneRequest(
        base=BASE, slides=slides, out=tmp_path / "new.safetensors", cache_dir=tmp_path / "cache",
        **options,
    )  # fmt: skip


def _refused(request: FinetuneRequest, match: str) -> None:
    with pytest.raises(FinetuneInputError, match=match):
        run_job(finetune(request))
    # nothing was written: no model, no resume state, no features extracted
    assert not request.out.exists()
    assert not list(request.out.parent.glob(".*finetune-state"))
    assert not request.cache_dir.exists()


def test_a_slide_without_label_or_annotations_is_refused(slides, tmp_path) -> None:
    request = _request(
        tmp_path, [TrainingSlide(slides["normal"]), TrainingSlide(slides["lesion"], "lesion")]
    )
    _refused(request, "normal.tiff: neither a label nor annotations")


def test_a_label_the_model_lacks_is_refused_and_add_class_accepts_it(slides, tmp_path) -> None:
    chosen = [
        TrainingSlide(slides["normal"], "mucinous"),
        TrainingSlide(slides["lesion"], "lesion"),
    ]
    _refused(_request(tmp_path, chosen), "--add-class 'mucinous'")
    plan = prepare_finetune(_request(tmp_path, chosen, add_classes=["mucinous"]))
    assert plan.class_names == ["lesion", "normal", "mucinous"]


def test_a_run_on_slide_labels_alone_is_cautioned(slides, tmp_path) -> None:
    # the fine-tune benchmark's finding: on a few slides, labels alone can teach a shortcut
    labels_only = [
        TrainingSlide(slides["normal"], "normal"),
        TrainingSlide(slides["lesion"], "lesion"),
    ]
    assert prepare_finetune(_request(tmp_path, labels_only)).cautions == [LABELS_ONLY_CAUTION]
    annotated = [
        TrainingSlide(slides["normal"], "normal"),
        TrainingSlide(slides["lesion"], None, slides["lesion"].with_suffix(".geojson")),
    ]
    assert prepare_finetune(_request(tmp_path, annotated)).cautions == []


def test_annotations_of_another_slide_are_refused(slides, tmp_path) -> None:
    other = tmp_path / "other.geojson"
    other.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "geometry": {
                            "type": "Polygon",
                            "coordinates": [
                                [[9000, 9000], [9900, 9000], [9900, 9900], [9000, 9000]]
                            ],
                        },
                        "properties": {"classification": {"name": "lesion"}},
                    }
                ],
            }
        )
    )
    chosen = [
        TrainingSlide(slides["lesion"], "lesion", other),
        TrainingSlide(slides["normal"], "normal"),
    ]
    _refused(_request(tmp_path, chosen), "drawn on another slide")


def test_features_of_another_extractor_are_refused(slides, tmp_path) -> None:
    import numpy as np

    features = tmp_path / "features"
    features.mkdir()
    write_feature_file(features / "lesion.h5", np.zeros((4, 74), np.float32), extractor="uni")
    chosen = [TrainingSlide(slides["lesion"], "lesion"), TrainingSlide(slides["normal"], "normal")]
    _refused(_request(tmp_path, chosen, features_dir=features), "extractor 'uni'")


def test_too_few_slides_for_validation_is_refused(slides, tmp_path) -> None:
    chosen = [TrainingSlide(slides["lesion"], "lesion"), TrainingSlide(slides["normal"], "normal")]
    request = _request(
        tmp_path, chosen, settings=FinetuneSettings(epochs=1, validation="on", device="cpu")
    )
    _refused(request, "too few slides for a validation share")


def test_an_existing_output_is_never_overwritten(slides, tmp_path) -> None:
    chosen = [TrainingSlide(slides["lesion"], "lesion"), TrainingSlide(slides["normal"], "normal")]
    request = _request(tmp_path, chosen)
    request.out.write_bytes(b"keep me")
    with pytest.raises(FinetuneInputError, match="already exists"):
        run_job(finetune(request))
    assert request.out.read_bytes() == b"keep me"


def test_finetune_records_lineage_and_derives_the_label(slides, tmp_path) -> None:
    annotations = slides["lesion"].with_name("lesion.geojson")
    chosen = [
        TrainingSlide(slides["lesion"], None, annotations),  # label from its annotations
        TrainingSlide(slides["normal"], "normal"),
    ]
    request = _request(tmp_path, chosen, outside_class="normal")
    outcome = run_job(finetune(request))
    meta = read_meta(outcome.result.path)
    lineage = meta.lineage
    assert lineage["base"]["name"] == "demo_model.safetensors"
    assert len(lineage["base"]["sha256"]) == 64
    first, second = lineage["slides"]
    assert first["label"] == "lesion"
    assert first["label_source"] == "from annotations"
    assert len(first["annotations_sha256"]) == 64
    assert first["patches"]["lesion"] > 0
    assert second["patches"]["normal"] > 0  # a slide of the outside class: every patch
    assert lineage["settings"]["epochs"] == 1
    assert [e["epoch"] for e in lineage["epochs"]] == [1]
    assert "date" in lineage
    assert "rules" in lineage
    assert meta.class_names == ["lesion", "normal"]


def test_a_gpu_too_small_fine_tunes_on_the_cpu_when_the_device_was_auto(
    slides, tmp_path, monkeypatch
) -> None:
    from slidescope.app.training import finetune as job

    real, devices = job.finetune_model, []

    def on_a_small_gpu(base, bags, class_names, settings, *rest):  # type: ignore[no-untyped-def]
        devices.append(settings.device)
        if settings.device != "cpu":
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.50 GiB. GPU 0")
        return (yield from real(base, bags, class_names, settings, *rest))

    monkeypatch.setattr(job, "finetune_model", on_a_small_gpu)
    chosen = [TrainingSlide(slides["lesion"], "lesion"), TrainingSlide(slides["normal"], "normal")]
    auto = FinetuneSettings(epochs=1, device="auto")
    steps: list[Progress] = []
    outcome = run_job(finetune(_request(tmp_path, chosen, settings=auto)), steps.append)
    assert devices == ["auto", "cpu"]
    assert "GPU memory short: fine-tuning starts again on the CPU" in [s.what for s in steps]
    assert outcome.result.path.is_file()
    # a GPU asked for by name (features already in the cache): a clear error, no model
    named = replace(
        outcome.plan.request,
        out=tmp_path / "named.safetensors",
        settings=FinetuneSettings(epochs=1, device="cuda"),
    )
    message = (
        r"fine-tuning on cuda: the GPU ran out of memory \(tried to allocate 2.50 gib\); "
        r"fine-tune on the CPU \(--device cpu\)"
    )
    with pytest.raises(DeviceMemoryError, match=message):
        run_job(finetune(named))
    assert not named.out.exists()
