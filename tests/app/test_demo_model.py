"""The bundled demo checkpoint finds the planted lesions of a demo slide it never saw."""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
from matplotlib.path import Path as PolygonPath
from slidescope.app.analysis.inference import analyze_slide
from slidescope.app.demo.generate import generate_demo_slide
from slidescope.app.jobs import run_job
from slidescope.models.checkpoints import read_meta
from slidescope.models.training.metrics import binary_auc

RESOURCES = Path(str(files("slidescope.resources")))
CHECKPOINT = RESOURCES / "demo_model.safetensors"
RECORD = RESOURCES / "demo_model.json"


def lesion_patches(coords: np.ndarray, size: int, lesions_geojson: Path) -> np.ndarray:
    """True for a patch whose centre, or at least half of it, lies inside a lesion outline."""
    rings = []
    for feature in json.loads(lesions_geojson.read_text())["features"]:
        geometry = feature["geometry"]
        polygons = (
            [geometry["coordinates"]] if geometry["type"] == "Polygon" else geometry["coordinates"]
        )
        rings.extend(PolygonPath(np.asarray(polygon[0], dtype=float)) for polygon in polygons)
    # the centre plus an 8 x 8 lattice of sample points covering the patch
    offsets = (np.arange(8) + 0.5) / 8 * size
    ox, oy = np.meshgrid(offsets, offsets)
    samples = np.stack([ox.ravel(), oy.ravel()], axis=1)
    positive = np.zeros(len(coords), bool)
    for i, (x, y) in enumerate(np.asarray(coords, dtype=float)):
        points = samples + np.array([x, y])
        centre = np.array([[x + size / 2, y + size / 2]])
        inside = np.zeros(len(points), bool)
        centre_in = False
        for ring in rings:
            inside |= ring.contains_points(points)
            centre_in |= bool(ring.contains_points(centre)[0])
        positive[i] = centre_in or inside.mean() >= 0.5
    return positive


def test_demo_checkpoint_is_small_and_documented() -> None:
    assert CHECKPOINT.is_file(), "resources/demo_model.safetensors is missing: run make demo-model"
    assert CHECKPOINT.stat().st_size < 2 * 1024 * 1024
    record = json.loads(RECORD.read_text())
    assert record["sha256"] == hashlib.sha256(CHECKPOINT.read_bytes()).hexdigest()
    meta = read_meta(CHECKPOINT)
    assert meta.extractor == "builtin"
    assert sorted(meta.class_names) == ["lesion", "normal"]
    trained = {entry["seed"] for entry in record["demo_slides"]["seeds"]}
    assert not trained & set(record["demo_slides"]["unseen_seeds_for_demo_and_tests"])


@pytest.mark.slow
def test_attention_finds_the_lesions_of_an_unseen_slide(tmp_path: Path, one_torch_thread) -> None:
    record = json.loads(RECORD.read_text())
    slides = record["demo_slides"]
    seed = slides["unseen_seeds_for_demo_and_tests"][0]
    demo = run_job(
        generate_demo_slide(
            tmp_path / f"unseen_{seed}.tiff",
            slides["width"],
            slides["height"],
            seed=seed,
            mpp=slides["mpp"],
        )
    )
    assert demo.lesion_count > 0, f"seed {seed} has no lesion any more: pick another unseen seed"
    analysis = run_job(analyze_slide(demo.path, CHECKPOINT, tmp_path / "cache", device="cpu"))
    positive = lesion_patches(analysis.coords, analysis.patch_size_level0, demo.lesions_path)
    assert 0 < positive.sum() < len(positive)
    auc = binary_auc(positive, analysis.attention)
    print(
        f"seed {seed}: {len(positive)} patches, {positive.sum()} in lesions, attention AUC {auc:.3f}"
    )
    assert auc >= 0.9
    assert analysis.predicted_class == "lesion"
