"""The bundled demo checkpoint finds the planted lesions of a demo slide it never saw."""

from __future__ import annotations

import hashlib
import json
from importlib.resources import files
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.path import Path as PolygonPath
from scipy.stats import rankdata
from slidescope.app.analysis.inference import analyze_slide
from slidescope.app.demo.generate import generate_demo_slide
from slidescope.app.jobs import run_job
from slidescope.models.checkpoints import read_meta

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


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U over the rank of the scores, ties shared)."""
    labels = np.asarray(labels, bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def test_roc_auc_helper() -> None:
    assert roc_auc(np.array([0, 0, 1, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert roc_auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.2, 0.3, 0.4])) == 0.75
    assert roc_auc(np.array([0, 1]), np.array([0.5, 0.5])) == 0.5


def test_lesion_patches_centre_or_half_inside(tmp_path: Path) -> None:
    square = [[100, 100], [300, 100], [300, 300], [100, 300], [100, 100]]
    path = tmp_path / "l.geojson"
    path.write_text(
        json.dumps({"features": [{"geometry": {"type": "Polygon", "coordinates": [square]}}]})
    )
    coords = np.array([[100, 100], [250, 100], [280, 100], [400, 400]])
    # inside; centre (300, 150) on the edge but 50 % inside; 20 % inside; outside
    np.testing.assert_array_equal(lesion_patches(coords, 100, path), [True, True, False, False])


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
def test_attention_finds_the_lesions_of_an_unseen_slide(tmp_path: Path) -> None:
    torch.set_num_threads(2)
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
    auc = roc_auc(positive, analysis.attention)
    print(
        f"seed {seed}: {len(positive)} patches, {positive.sum()} in lesions, attention AUC {auc:.3f}"
    )
    assert auc >= 0.9
    assert analysis.predicted_class == "lesion"
