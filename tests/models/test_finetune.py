"""Fine-tuning (models side): instance loss, added classes, validation rule, resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from finetune_bags import CLASSES, make_bags, make_base
from slidescope.models.checkpoints import load_checkpoint, read_meta
from slidescope.models.features import read_features
from slidescope.models.jobs import run_job
from slidescope.models.mil.base import MILOutput
from slidescope.models.mil.registry import create_model
from slidescope.models.training.add_class import grow_classes
from slidescope.models.training.finetune import finetune_model
from slidescope.models.training.finetune_settings import (
    FinetuneError,
    FinetuneSettings,
    split_validation,
)
from slidescope.models.training.instance_loss import (
    UNLABELLED,
    instance_class_weights,
    instance_loss,
)
from slidescope.models.training.metrics import binary_auc

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _run(tmp_path: Path, bags, **kwargs) -> tuple[Path, object]:
    settings = FinetuneSettings(device="cpu", **kwargs)
    out = tmp_path / "new.safetensors"
    result = run_job(
        finetune_model(
            tmp_path / "base.safetensors",
            bags,
            list(CLASSES),
            settings,
            out,
            tmp_path / "new.state",
            {"base": {"sha256": "abc"}},
        )
    )
    return out, result


def _attention_auc(checkpoint: Path, bags) -> float:
    model = load_checkpoint(checkpoint).model
    aucs = []
    for bag in bags:
        if bag.label != 0:
            continue
        with torch.no_grad():
            attention = model(torch.from_numpy(read_features(bag.features))).attention.numpy()
        aucs.append(binary_auc(bag.instance_labels == 0, attention))
    return float(np.mean(aucs))


@torch.no_grad()
def test_instance_loss_is_zero_without_labels_and_falls_when_right() -> None:
    torch.manual_seed(0)
    model = create_model("abmil", 4, 2, hidden_dim=8)
    x = torch.randn(10, 4)
    h = model.embed(x)
    out = model.aggregate(h)
    none = torch.full((10,), UNLABELLED)
    assert float(instance_loss(model, h, out, none, 0).detach()) == 0.0
    labels = torch.ones(10, dtype=torch.long)
    labels[:3] = 0
    loss = instance_loss(model, h, out, labels, bag_label=0)
    assert float(loss) > 0
    # a model whose classifier and attention agree with the labels has a smaller loss
    logits = model.classifier(h).detach()
    right = MILOutput(out.logits, torch.tensor([0.3] * 3 + [0.1 / 7] * 7), out.bag_feature,
                      out.instance_probs)  # fmt: skip
    wrong = MILOutput(out.logits, torch.tensor([0.0] * 3 + [1 / 7] * 7), out.bag_feature,
                      out.instance_probs)  # fmt: skip
    assert float(instance_loss(model, h, right, labels, 0)) < float(
        instance_loss(model, h, wrong, labels, 0)
    )
    assert logits.shape == (10, 2)


def test_instance_class_weights_balance_rare_lesion_patches() -> None:
    weights = instance_class_weights([np.array([0, 1, 1, 1, 1, 1, 1, 1, -1])], 2)
    assert weights[0] > 3 * weights[1]


def test_grow_classes_keeps_old_outputs() -> None:
    torch.manual_seed(0)
    model = create_model("abmil", 6, 2, hidden_dim=8).eval()
    grown = grow_classes(model, ["mucinous"]).eval()
    x = torch.randn(12, 6)
    with torch.no_grad():
        old, new = model(x), grown(x)
    assert new.logits.shape == (3,)
    torch.testing.assert_close(new.logits[:2], old.logits)
    torch.testing.assert_close(new.attention, old.attention)


def test_validation_rule() -> None:
    enough = np.array([0, 0, 0, 1, 1, 1, 1])
    train, val = split_validation(enough, FinetuneSettings())
    assert len(val) >= 2
    assert set(enough[val]) == {0, 1}
    assert not set(train) & set(val)
    few = np.array([0, 0, 1, 1])
    train, val = split_validation(few, FinetuneSettings())
    assert len(val) == 0
    assert len(train) == 4
    with pytest.raises(FinetuneError, match="too few slides for a validation share"):
        split_validation(few, FinetuneSettings(validation="on"))


def test_finetune_learns_the_annotated_evidence_and_records_lineage(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base.safetensors")
    bags = make_bags(tmp_path / "bags")
    before = _attention_auc(base, bags)
    base_bytes = base.read_bytes()
    out, _result = _run(tmp_path, bags, epochs=6, validation="off", lr=1e-3)
    after = _attention_auc(out, bags)
    assert after > max(before + 0.2, 0.9), (before, after)
    assert base.read_bytes() == base_bytes  # the base is never touched
    meta = read_meta(out)
    assert meta.lineage["base"] == {"sha256": "abc"}
    assert [e["epoch"] for e in meta.lineage["epochs"]] == [1, 2, 3, 4, 5, 6]
    assert meta.lineage["instance_weight"] == 1.0
    assert "date" in meta.lineage
    assert meta.training["finetuned"] is True
    assert not (tmp_path / "new.state").exists()


def test_finetune_refuses_to_overwrite_its_base(tmp_path: Path) -> None:
    base = make_base(tmp_path / "base.safetensors")
    bags = make_bags(tmp_path / "bags", n_bags=4)
    job = finetune_model(base, bags, list(CLASSES), FinetuneSettings(), base, tmp_path / "s", {})
    with pytest.raises(FinetuneError, match="must not overwrite its base"):
        run_job(job)


def test_resume_after_kill_continues_from_last_epoch(tmp_path: Path) -> None:
    make_base(tmp_path / "base.safetensors", seed=0)
    child = Path(__file__).resolve().parent / "finetune_child.py"
    done = subprocess.run([sys.executable, str(child), str(tmp_path), "3"], check=False)
    assert done.returncode == -9
    assert (tmp_path / "new.state").exists()
    assert not (tmp_path / "new.safetensors").exists()
    state = torch.load(tmp_path / "new.state", weights_only=True)
    assert state["epoch"] == 2
    bags = make_bags(tmp_path / "bags")
    out, result = _run(tmp_path, bags, epochs=4, validation="off", seed=3)
    assert result.resumed_from_epoch == 2
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    # the same weights as a run never interrupted
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    make_base(fresh / "base.safetensors", seed=0)
    other, _ = _run(fresh, make_bags(fresh / "bags"), epochs=4, validation="off", seed=3)
    a, b = load_checkpoint(out).model.state_dict(), load_checkpoint(other).model.state_dict()
    for key in a:
        torch.testing.assert_close(a[key], b[key])
