"""Labels CSV parsing and the seeded, stratified splits."""

from __future__ import annotations

import numpy as np
import pytest
from slidescope.models.training.labels import (
    LabelsError,
    quantile_time_bins,
    read_labels,
    stratified_folds,
    stratified_split,
    time_to_bin,
)


def _csv(tmp_path, text: str):
    path = tmp_path / "labels.csv"
    path.write_text(text)
    return path


def test_numeric_labels_keep_numeric_order(tmp_path) -> None:
    table = read_labels(_csv(tmp_path, "slide_id,label\na,10\nb,2\nc,1\nd,2\n"))
    assert table.class_names == ["1", "2", "10"]
    assert table.targets.tolist() == [2, 1, 0, 1]
    assert not table.has_split


def test_string_labels_sorted_and_splits(tmp_path) -> None:
    table = read_labels(
        _csv(tmp_path, "slide_id,label,split\na,tumor,train\nb,normal,VAL\nc,tumor,test\n")
    )
    assert table.class_names == ["normal", "tumor"]
    assert table.splits == ["train", "val", "test"]
    assert table.rows_of_split("test") == [2]


def test_labels_mapped_onto_model_classes(tmp_path) -> None:
    path = _csv(tmp_path, "slide_id,label\na,tumor\n")
    assert read_labels(path, class_names=["normal", "tumor"]).targets.tolist() == [1]
    with pytest.raises(LabelsError, match="not classes of the model"):
        read_labels(_csv(tmp_path, "slide_id,label\na,other\n"), class_names=["x", "y"])


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("id,label\na,1\n", "missing column"),
        ("slide_id,label\na,1\na,0\n", "listed twice"),
        ("slide_id,label,split\na,1,holdout\n", "not one of train"),
        ("slide_id,label\na,\n", "no label"),
        ("slide_id,time,event\na,x,1\n", "row 2: time 'x' must be a finite number"),
        ("slide_id,time,event\na,5,1\nb,nan,0\n", "row 3: time 'nan' must be a finite"),
        ("slide_id,time,event\na,inf,1\n", "row 2: time 'inf'"),
        ("slide_id,time,event\na,0,1\n", "greater than 0"),
        ("slide_id,time,event\na,-3,1\n", "greater than 0"),
        ("slide_id,time,event\na,3,2\n", "event '2' must be 0"),
    ],
)
def test_bad_labels(tmp_path, text: str, match: str) -> None:
    task = "survival" if "time" in text else "classification"
    with pytest.raises(LabelsError, match=match):
        read_labels(_csv(tmp_path, text), task=task)


def test_survival_labels_and_bins(tmp_path) -> None:
    table = read_labels(
        _csv(tmp_path, "slide_id,time,event\na,1,1\nb,2,0\nc,3,1\nd,4,1\ne,5,1\n"),
        task="survival",
    )
    assert table.events.tolist() == [1, 0, 1, 1, 1]
    edges = quantile_time_bins(table.times, table.events, 4)
    assert edges == pytest.approx(np.quantile([1, 3, 4, 5], [0.25, 0.5, 0.75]).tolist())
    assert time_to_bin(np.array([0.0, 100.0]), edges).tolist() == [0, 3]


def test_stratified_split_holds_out_each_class() -> None:
    strata = np.array([0] * 20 + [1] * 5)
    kept, held = stratified_split(strata, 0.2, seed=1)
    assert sorted(np.concatenate([kept, held]).tolist()) == list(range(25))
    assert np.sum(strata[held] == 0) == 4
    assert np.sum(strata[held] == 1) == 1
    again = stratified_split(strata, 0.2, seed=1)
    assert np.array_equal(again[1], held)


def test_stratified_folds_partition() -> None:
    strata = np.array([0] * 10 + [1] * 7)
    folds = stratified_folds(strata, 3, seed=0)
    joined = np.concatenate(folds)
    assert sorted(joined.tolist()) == list(range(17))
    assert max(len(f) for f in folds) - min(len(f) for f in folds) <= 1
    for fold in folds:
        assert 1 <= np.sum(strata[fold] == 1) <= 3
    with pytest.raises(LabelsError):
        stratified_folds(strata, 1, seed=0)


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ("slide_id,label\na,1\nb,\u00e9t\u00e9\n".encode("latin-1"), 3),
        ("slide_id,label\na,1\n".encode("utf-16"), 1),
        (b"slide_id,label\na,1\nb,0\nc,\xff\xfe\n", 4),
    ],
)
def test_labels_not_utf8_name_the_line(tmp_path, data: bytes, line: int) -> None:
    path = tmp_path / "labels.csv"
    path.write_bytes(data)
    with pytest.raises(LabelsError, match=rf"line {line}: .*UTF-8"):
        read_labels(path)
