"""``slidescope train`` and ``slidescope evaluate`` end to end on planted synthetic bags."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import training_bags
from slidescope.app.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("cli") / "feats"
    return training_bags.planted_bags(folder, n_bags=60, n_instances=100, dim=32, seed=0)


COMMON = ["--epochs", "10", "--lr", "1e-3", "--model-arg", "hidden_dim=32", "--quiet"]


def _train(bags, out: Path, *extra: str) -> int:
    folder, labels = bags
    return main(
        [
            "train",
            "--features",
            str(folder),
            "--labels",
            str(labels),
            "--out",
            str(out),
            *COMMON,
            *list(extra),
        ]
    )


def _evaluate(bags, checkpoint: Path, out: Path) -> dict:
    folder, labels = bags
    code = main(
        ["evaluate", "--checkpoint", str(checkpoint), "--features", str(folder),
         "--labels", str(labels), "--out", str(out), "--bootstrap", "200", "--quiet"]
    )  # fmt: skip
    assert code == 0
    return json.loads(out.read_text())


@pytest.mark.slow
@pytest.mark.parametrize("method", ["plain", "mhim"])
def test_train_and_evaluate_reach_high_auc(bags, tmp_path, method, capsys) -> None:
    model = tmp_path / f"{method}.safetensors"
    assert _train(bags, model, "--method", method) == 0
    printed = capsys.readouterr().out
    assert "val_auc" in printed
    metrics = _evaluate(bags, model, tmp_path / "metrics.json")
    assert metrics["auc"]["value"] >= 0.9
    assert metrics["auc"]["ci_low"] <= metrics["auc"]["value"] <= metrics["auc"]["ci_high"]
    for key in ("accuracy", "balanced_accuracy", "f1"):
        assert 0.0 <= metrics[key]["value"] <= 1.0
    assert metrics["n_slides"] == 12  # the test rows only
    predictions = list(csv.DictReader((tmp_path / "metrics_predictions.csv").open()))
    assert len(predictions) == 12
    assert {"slide_id", "label", "predicted", "prob_0", "prob_1"} <= predictions[0].keys()
    assert (tmp_path / "metrics_roc.png").read_bytes()[:4] == b"\x89PNG"


def test_evaluate_uses_validation_threshold(bags, tmp_path) -> None:
    from slidescope.models.checkpoints import read_meta

    model = tmp_path / "m.safetensors"
    assert _train(bags, model, "--epochs", "3") == 0
    metrics = _evaluate(bags, model, tmp_path / "metrics.json")
    assert metrics["threshold"] == pytest.approx(read_meta(model).threshold)


def test_mismatched_extractor_refused(bags, tmp_path, capsys) -> None:
    model = tmp_path / "m.safetensors"
    assert _train(bags, model, "--epochs", "1") == 0
    folder, labels = bags
    other = tmp_path / "other"
    other.mkdir()
    for path in folder.glob("*.h5"):
        features = np.zeros((4, 32), np.float32)
        training_bags.write_feature_file(other / path.name, features, extractor="uni_v1")
    code = main(
        ["evaluate", "--checkpoint", str(model), "--features", str(other), "--labels",
         str(labels), "--out", str(tmp_path / "x.json"), "--quiet"]
    )  # fmt: skip
    assert code == 2
    error = capsys.readouterr().err
    assert "uni_v1" in error
    assert "synthetic" in error
    assert not (tmp_path / "x.json").exists()


def test_user_errors_exit_2(bags, tmp_path, capsys) -> None:
    _folder, labels = bags
    assert _train(bags, tmp_path / "m.pt") == 2
    assert ".safetensors" in capsys.readouterr().err
    assert _train((tmp_path / "nowhere", labels), tmp_path / "m.safetensors") == 2
    assert "nowhere" in capsys.readouterr().err
    assert _train(bags, tmp_path / "m.safetensors", "--device", "tpu") == 2


@pytest.mark.slow
def test_folds_summary(bags, tmp_path, capsys) -> None:
    out = tmp_path / "cv.safetensors"
    assert _train(bags, out, "--folds", "3", "--epochs", "4") == 0
    summary = json.loads((tmp_path / "cv_cv_summary.json").read_text())
    assert summary["folds"] == 3
    assert len(summary["per_fold"]) == 3
    for k in range(3):
        assert (tmp_path / f"cv_fold{k}.safetensors").exists()
    assert set(summary["summary"]["test_auc"]) == {"mean", "std"}
    tested = [s for fold in summary["per_fold"] for s in fold["test_slides"]]
    assert len(tested) == len(set(tested))  # every slide tested once at most
    assert "test auc:" in capsys.readouterr().out


@pytest.mark.slow
def test_survival_train_and_evaluate(tmp_path, capsys) -> None:
    folder, labels = training_bags.survival_bags(tmp_path / "surv", n_bags=40)
    model = tmp_path / "surv.safetensors"
    code = main(
        ["train", "--task", "survival", "--features", str(folder), "--labels", str(labels),
         "--out", str(model), *COMMON]
    )  # fmt: skip
    assert code == 0
    metrics = _evaluate((folder, labels), model, tmp_path / "surv.json")
    assert 0.0 <= metrics["c_index"]["value"] <= 1.0
    assert metrics["task"] == "survival"
    rows = list(csv.DictReader((tmp_path / "surv_predictions.csv").open()))
    assert {"slide_id", "time", "event", "risk"} <= rows[0].keys()
    assert not (tmp_path / "surv_roc.png").exists()


def test_evaluate_without_split_scores_every_row(bags, tmp_path) -> None:
    folder, labels = bags
    model = tmp_path / "m.safetensors"
    assert _train(bags, model, "--epochs", "1") == 0
    plain = tmp_path / "nosplit.csv"
    lines = labels.read_text().splitlines()
    plain.write_text("\n".join(",".join(line.split(",")[:2]) for line in lines[:21]) + "\n")
    metrics = _evaluate((folder, plain), model, tmp_path / "all.json")
    assert metrics["n_slides"] == 20
