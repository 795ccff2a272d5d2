"""``slidescope train --annotations``: labels + features + region annotations, no project."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
from slidescope.app.cli import main
from slidescope.models.checkpoints import read_meta
from training_bags import write_feature_file


def _data(folder: Path) -> tuple[Path, Path, Path]:
    features, annotations = folder / "features", folder / "annotations"
    features.mkdir()
    annotations.mkdir()
    rng = np.random.default_rng(0)
    rows = ["slide_id,label"]
    for i in range(8):
        x = rng.standard_normal((20, 8)).astype(np.float32)
        lesion = i % 2 == 0
        if lesion:
            x[2:4, 0] += 4.0
        path = write_feature_file(features / f"s{i}.h5", x)
        with h5py.File(path, "a") as handle:
            handle.attrs["slide_height"] = 4096  # room for the patches' 512 px boxes
        rows.append(f"s{i},{'lesion' if lesion else 'normal'}")
        if lesion:
            ring = [[512, 0], [1280, 0], [1280, 512], [512, 512], [512, 0]]
            feature = {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {"classification": {"name": "lesion"}},
            }
            (annotations / f"s{i}.geojson").write_text(
                json.dumps({"type": "FeatureCollection", "features": [feature]})
            )
    labels = folder / "labels.csv"
    labels.write_text("\n".join(rows) + "\n")
    return features, labels, annotations


def test_train_with_annotations_writes_a_model_with_lineage(tmp_path: Path, capsys) -> None:
    features, labels, annotations = _data(tmp_path)
    out = tmp_path / "model.safetensors"
    status = main([
        "train", "--features", str(features), "--labels", str(labels), "--annotations",
        str(annotations), "--out", str(out), "--epochs", "2", "--device", "cpu", "--quiet",
        "--model-arg", "hidden_dim=16",
    ])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    meta = read_meta(out)
    slides = {s["slide_id"]: s for s in meta.lineage["slides"]}
    assert slides["s0"]["patches"]["lesion"] == 2
    assert len(slides["s0"]["annotations_sha256"]) == 64
    assert slides["s1"]["annotations"] is None
    assert meta.lineage["instance_weight"] == 1.0
    assert "s0: lesion (given); lesion 2" in capsys.readouterr().out


def test_finetune_without_project_needs_its_inputs(tmp_path: Path, capsys) -> None:
    status = main(["finetune", "--out", str(tmp_path / "x.safetensors"), "--quiet"])
    assert status == 2
    assert "give --slides, --base and --cache" in capsys.readouterr().err
