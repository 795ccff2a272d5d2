"""Checkpoints are validated when loaded: finite weights and threshold, sane sizes, shapes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from slidescope.models.checkpoint_validation import (
    InvalidArchitectureError,
    InvalidThresholdError,
    NonFiniteWeightsError,
    WeightShapeError,
)
from slidescope.models.checkpoints import (
    METADATA_KEY,
    CheckpointMeta,
    load_checkpoint,
    load_into,
    read_meta,
    save_checkpoint,
)
from slidescope.models.errors import CheckpointError, ModelError
from slidescope.models.mil import create_model

IN_DIM = 12


def _saved(tmp_path: Path, name: str = "abmil", teacher: bool = False, **meta_kw) -> Path:
    torch.manual_seed(0)
    model = create_model(name, IN_DIM, 2, hidden_dim=8).eval()
    meta = CheckpointMeta.for_model(model, class_names=["normal", "tumour"], **meta_kw)
    extra = create_model(name, IN_DIM, 2, hidden_dim=8) if teacher else None
    return save_checkpoint(tmp_path / "model.safetensors", model, meta, extra)


def _rewrite(path: Path, edit_tensors=None, edit_meta=None) -> Path:
    """Rewrite a checkpoint's tensors and/or metadata JSON as a damaged file would be."""
    tensors = load_file(str(path))
    meta = json.loads(read_meta_raw(path))
    if edit_tensors:
        edit_tensors(tensors)
    if edit_meta:
        edit_meta(meta)
    save_file(tensors, str(path), metadata={METADATA_KEY: json.dumps(meta)})
    return path


def read_meta_raw(path: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()[METADATA_KEY]


def test_a_valid_checkpoint_loads(tmp_path) -> None:
    loaded = load_checkpoint(_saved(tmp_path, threshold=0.4))
    assert loaded.meta.threshold == 0.4


@pytest.mark.parametrize("teacher", [False, True])
def test_one_nan_weight_is_refused_naming_the_tensor(tmp_path, teacher) -> None:
    path = _saved(tmp_path, teacher=teacher)
    prefix = "teacher." if teacher else ""

    def poison(tensors: dict) -> None:
        key = next(k for k in sorted(tensors) if k.startswith(prefix) and k.endswith("weight"))
        tensors[key] = tensors[key].clone()
        tensors[key].view(-1)[3] = float("nan")

    _rewrite(path, edit_tensors=poison)
    with pytest.raises(
        NonFiniteWeightsError, match=r"model\.safetensors: .*NaN or infinite.*1 of"
    ):
        load_checkpoint(path)
    if not teacher:
        model = create_model("abmil", IN_DIM, 2, hidden_dim=8)
        with pytest.raises(NonFiniteWeightsError):
            load_into(model, path)


def test_an_infinite_standardisation_is_refused(tmp_path) -> None:
    path = _rewrite(_saved(tmp_path), edit_tensors=lambda t: t["feature_std"].fill_(float("inf")))
    with pytest.raises(NonFiniteWeightsError, match="feature_std"):
        load_checkpoint(path)


@pytest.mark.parametrize("threshold", ["NaN", "Infinity", "0.5"])
def test_a_threshold_that_is_not_a_finite_number_is_refused(tmp_path, threshold) -> None:
    path = _saved(tmp_path, threshold=0.5)
    # JSON from another writer: Python's json reads NaN/Infinity literals; "0.5" is text
    text = read_meta_raw(path).replace('"threshold": 0.5', f'"threshold": {threshold}')
    if threshold == "0.5":
        text = read_meta_raw(path).replace('"threshold": 0.5', '"threshold": "0.5"')
    save_file(load_file(str(path)), str(path), metadata={METADATA_KEY: text})
    with pytest.raises(InvalidThresholdError, match=r"model\.safetensors: its decision threshold"):
        read_meta(path)
    with pytest.raises(InvalidThresholdError):
        load_checkpoint(path)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("hidden_dim", 10_000_000, r"hidden_dim=10000000 \(expected an integer in \[1, 65536\]"),
        ("hidden_dim", 0, r"hidden_dim=0"),
        ("hidden_dim", 2.5, r"hidden_dim=2.5"),
        ("dropout", 1.5, r"dropout=1.5 \(expected a rate"),
        ("dropout", float("nan"), r"dropout=nan \(not a finite number"),
        ("in_dim", -3, r"in_dim=-3"),
        ("n_classes", 10**9, r"n_classes=1000000000"),
    ],
)
def test_absurd_architecture_arguments_are_refused_before_building(
    tmp_path, field, value, reason
) -> None:
    path = _saved(tmp_path)

    def edit(meta: dict) -> None:
        if field in ("in_dim", "n_classes"):
            meta[field] = value
        else:
            meta["arch_kwargs"][field] = value

    _rewrite(path, edit_meta=edit)
    with pytest.raises(InvalidArchitectureError, match=reason):
        load_checkpoint(path)


def test_weights_of_another_shape_than_the_metadata_are_refused(tmp_path) -> None:
    path = _saved(tmp_path)
    # the metadata says hidden_dim 9, the weights are of hidden_dim 8
    _rewrite(path, edit_meta=lambda meta: meta["arch_kwargs"].update(hidden_dim=9))
    with pytest.raises(WeightShapeError, match=r"model\.safetensors: .*shape mismatch"):
        load_checkpoint(path)


def test_the_errors_are_model_errors() -> None:
    for error in (
        NonFiniteWeightsError,
        InvalidThresholdError,
        InvalidArchitectureError,
        WeightShapeError,
    ):
        assert issubclass(error, CheckpointError)
        assert issubclass(error, ModelError)


def test_metadata_round_trip_keeps_the_checked_fields(tmp_path) -> None:
    meta = read_meta(_saved(tmp_path, threshold=0.25))
    assert dataclasses.asdict(meta)["threshold"] == 0.25
    assert meta.arch_kwargs == {"hidden_dim": 8}
