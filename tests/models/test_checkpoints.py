"""Checkpoints: safetensors round trip, teacher, metadata, atomic writes, refusals, safety."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, safe_open, save_file
from slidescope.models import checkpoints as ckpt
from slidescope.models.checkpoints import (
    CheckpointMeta,
    check_compatible,
    load_checkpoint,
    load_into,
    load_state_dict_file,
    read_meta,
    save_checkpoint,
)
from slidescope.models.errors import CheckpointError
from slidescope.models.mil import MILModel, create_model

IN_DIM = 20


def build(name: str = "abmil_gated", in_dim: int = IN_DIM, seed: int = 0, **kw) -> MILModel:
    torch.manual_seed(seed)
    return create_model(name, in_dim, 2, hidden_dim=16, **kw).eval()


def meta_for(model: MILModel, **kw) -> CheckpointMeta:
    return CheckpointMeta.for_model(
        model,
        class_names=["normal", "tumour"],
        extractor="resnet50_trunc",
        patch_size=256,
        target_mpp=0.5,
        training={"method": "mhim", "mask_ratio_high": 0.01, "epochs": 3, "seed": 7},
        metrics={"val_auc": 0.93},
        threshold=0.41,
        **kw,
    )


@pytest.mark.parametrize("name", ["abmil", "transmil", "dsmil", "clam_sb", "max_pool"])
def test_round_trip_gives_the_same_outputs(tmp_path, name):
    kw = {"n_heads": 4} if name == "transmil" else {}
    model = build(name, **kw)
    model.set_standardisation(torch.rand(IN_DIM) * 3, torch.rand(IN_DIM) + 0.5)
    path = save_checkpoint(tmp_path / "model.safetensors", model, meta_for(model))
    loaded = load_checkpoint(path)
    assert loaded.teacher is None
    assert type(loaded.model) is type(model)
    assert not loaded.model.training
    x = torch.randn(33, IN_DIM)
    with torch.no_grad():
        a, b = model(x), loaded.model(x)
    torch.testing.assert_close(a.logits, b.logits, atol=0, rtol=0)
    torch.testing.assert_close(a.attention, b.attention, atol=0, rtol=0)
    torch.testing.assert_close(loaded.model.feature_mean, model.feature_mean)


def test_metadata_round_trip_and_storage(tmp_path):
    model = build("abmil", dropout=0.1)
    meta = meta_for(model)
    path = save_checkpoint(tmp_path / "m.safetensors", model, meta)
    assert read_meta(path) == meta
    loaded = load_checkpoint(path)
    assert loaded.meta == meta
    assert loaded.meta.arch_kwargs == {"hidden_dim": 16, "dropout": 0.1}
    assert loaded.model.arch == "abmil"
    assert loaded.model.arch_kwargs == {"hidden_dim": 16, "dropout": 0.1}
    # One metadata key holding JSON, readable by any safetensors tool.
    with safe_open(str(path), framework="pt") as handle:
        stored = handle.metadata()
    assert set(stored) == {"slidescope"}
    data = json.loads(stored["slidescope"])
    assert data["threshold"] == 0.41
    assert data["format_version"] == ckpt.FORMAT_VERSION
    assert data["created"]


def test_teacher_is_stored_beside_the_student(tmp_path):
    student, teacher = build(seed=0), build(seed=1)
    path = save_checkpoint(tmp_path / "m.safetensors", student, meta_for(student), teacher)
    keys = load_file(str(path)).keys()
    assert any(k.startswith("teacher.") for k in keys)
    assert "teacher.feature_mean" in keys
    loaded = load_checkpoint(path)
    assert loaded.teacher is not None
    x = torch.randn(12, IN_DIM)
    with torch.no_grad():
        torch.testing.assert_close(loaded.teacher(x).logits, teacher(x).logits)
        torch.testing.assert_close(loaded.model(x).logits, student(x).logits)
        assert not torch.allclose(loaded.teacher(x).logits, loaded.model(x).logits)


def test_only_safetensors_is_written(tmp_path):
    model = build()
    with pytest.raises(CheckpointError, match=r"model\.pt: .*\.safetensors only"):
        save_checkpoint(tmp_path / "model.pt", model, meta_for(model))
    assert not (tmp_path / "model.pt").exists()


def test_write_is_atomic(tmp_path, monkeypatch):
    model = build()
    path = tmp_path / "m.safetensors"
    save_checkpoint(path, model, meta_for(model))
    before = path.read_bytes()

    def broken(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, build(seed=5), meta_for(model))
    # The old checkpoint is untouched and no temporary file is left behind.
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
    with pytest.raises(OSError):
        save_checkpoint(tmp_path / "new.safetensors", model, meta_for(model))
    assert not (tmp_path / "new.safetensors").exists()


def test_meta_must_describe_the_model(tmp_path):
    model = build()
    meta = meta_for(model)
    meta.in_dim = 99
    with pytest.raises(CheckpointError, match="99 features"):
        save_checkpoint(tmp_path / "m.safetensors", model, meta)


def test_load_into_another_architecture_says_what_differs(tmp_path):
    model = build("abmil")
    path = save_checkpoint(tmp_path / "abmil.safetensors", model, meta_for(model))
    with pytest.raises(CheckpointError, match=r"abmil\.safetensors: .*'abmil'.*expected 'dsmil'"):
        load_into(build("dsmil"), path)
    with pytest.raises(CheckpointError, match=f"reads {IN_DIM} features.*expects 64"):
        load_into(build("abmil", in_dim=64), path)
    other = build("abmil", seed=3)
    load_into(other, path)
    x = torch.randn(5, IN_DIM)
    torch.testing.assert_close(other(x).logits, model(x).logits)
    # Same name, other shape (hidden size): keys match but shapes do not.
    with pytest.raises(CheckpointError, match=r"shape mismatch: .*expected .*found"):
        load_into(create_model("abmil", IN_DIM, 2, hidden_dim=8), path)


def test_tampered_weights_are_named(tmp_path):
    model = build("abmil")
    path = save_checkpoint(tmp_path / "m.safetensors", model, meta_for(model))
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    tensors = load_file(str(path))
    tensors.pop("classifier.weight")
    tensors["extra.weight"] = torch.zeros(2)
    save_file(tensors, str(path), metadata=metadata)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert message.startswith("m.safetensors:")
    assert "missing 1 weights (classifier.weight)" in message
    assert "unexpected 1 weights (extra.weight)" in message


def test_files_that_are_not_checkpoints(tmp_path):
    bare = tmp_path / "bare.safetensors"
    save_file({"w": torch.zeros(2)}, str(bare))
    with pytest.raises(CheckpointError, match="without SlideScope metadata"):
        load_checkpoint(bare)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match=r"junk\.safetensors: not a readable"):
        load_checkpoint(junk)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.safetensors")
    unknown = tmp_path / "u.safetensors"
    meta = CheckpointMeta("no_such_model", IN_DIM, 2)
    save_file({"w": torch.zeros(2)}, str(unknown), metadata={"slidescope": meta.to_json()})
    with pytest.raises(CheckpointError, match=r"cannot rebuild.*no_such_model"):
        load_checkpoint(unknown)


def test_newer_format_is_refused():
    text = json.dumps({"architecture": "abmil", "in_dim": 3, "n_classes": 2, "format_version": 99})
    with pytest.raises(CheckpointError, match="version 99 is newer"):
        CheckpointMeta.from_json(text, "x.safetensors")


def test_check_compatible_names_both_sides():
    meta = meta_for(build())
    check_compatible(meta, "resnet50_trunc", IN_DIM, "slide1.h5")
    check_compatible(meta, None, IN_DIM, "clam_file.h5")  # CLAM files name no extractor
    with pytest.raises(CheckpointError, match=r"slide1\.h5: .*'uni'.*'resnet50_trunc'"):
        check_compatible(meta, "uni", IN_DIM, "slide1.h5")
    with pytest.raises(CheckpointError, match=rf"slide1\.h5: .*dimension 1024.*expects {IN_DIM}"):
        check_compatible(meta, "resnet50_trunc", 1024, "slide1.h5")


def test_plain_weight_files_are_read(tmp_path):
    state = {"layer.weight": torch.randn(3, 2), "layer.bias": torch.zeros(3)}
    for name in ("w.pt", "w.pth", "w.bin"):
        torch.save(state, tmp_path / name)
        loaded = load_state_dict_file(tmp_path / name)
        assert loaded.keys() == state.keys()
        torch.testing.assert_close(loaded["layer.weight"], state["layer.weight"])
    torch.save({"state_dict": state, "epoch": 3}, tmp_path / "wrapped.pth")
    assert load_state_dict_file(tmp_path / "wrapped.pth").keys() == state.keys()
    save_file(state, str(tmp_path / "w.safetensors"))
    assert load_state_dict_file(tmp_path / "w.safetensors").keys() == state.keys()
    (tmp_path / "w.onnx").write_bytes(b"x")
    with pytest.raises(CheckpointError, match="unknown weights format"):
        load_state_dict_file(tmp_path / "w.onnx")


class _RunsCode:
    """A pickle payload that would create a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (str(self.marker),))


def test_a_malicious_pickle_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    with evil.open("wb") as handle:
        pickle.dump({"layer.weight": _RunsCode(marker)}, handle, protocol=2)
    with pytest.raises(CheckpointError, match=r"evil\.pth: not a plain weights file"):
        load_state_dict_file(evil)
    assert not marker.exists()
    # Also inside torch's zip container.
    zipped = tmp_path / "evil_zip.pt"
    torch.save({"layer.weight": _RunsCode(marker)}, zipped)
    with pytest.raises(CheckpointError, match="not a plain weights file"):
        load_state_dict_file(zipped)
    assert not marker.exists()
