"""MHIM's teacher as the paper: a plain model of the same training slides, never a test slide."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from slidescope.models.checkpoints import load_checkpoint, read_meta
from slidescope.models.errors import CheckpointError
from slidescope.models.jobs import run_job
from slidescope.models.training.config import MHIMConfig, TrainingConfig
from slidescope.models.training.crossval import cross_validate
from slidescope.models.training.presets import PRESETS, apply_preset, explicit_settings
from slidescope.models.training.run import select
from slidescope.models.training.trainer import train
from training_bags import planted_bags

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> tuple[Path, Path]:
    return planted_bags(
        tmp_path_factory.mktemp("teacher") / "feats", n_bags=24, n_instances=30, dim=16,
        splits=None,
    )  # fmt: skip


def _config(bags, out: Path, **kwargs) -> TrainingConfig:
    settings = {"epochs": 2, "lr": 1e-3, "patience": 0, "model_kwargs": {"hidden_dim": 16}}
    settings.update(kwargs)
    return TrainingConfig(features=bags[0], labels=bags[1], out=out, **settings)


def test_no_test_fold_slide_reaches_a_teacher(bags, tmp_path) -> None:
    out = tmp_path / "cv.safetensors"
    config = _config(bags, out, method="mhim", mhim=MHIMConfig(teacher_epochs=1))
    result = run_job(cross_validate(config, 3, resamples=10))
    summary = json.loads(result.summary_path.read_text())
    for fold in summary["per_fold"]:
        k = fold["fold"]
        teacher = read_meta(out.with_name(f"cv_fold{k}_teacher.safetensors"))
        student = read_meta(Path(fold["checkpoint"]))
        assert teacher.training["method"] == "plain"
        assert student.training["teacher_init"] is None
        trained = set(teacher.training["train_slide_ids"]) | set(teacher.training["val_slide_ids"])
        assert trained, "the teacher records what it saw"
        assert not trained & set(fold["test_slides"]), f"fold {k} leaked"
        # the student trained on the same slides as its teacher
        assert student.training["train_slide_ids"] == teacher.training["train_slide_ids"]


def test_one_teacher_for_every_fold_is_refused(bags, tmp_path) -> None:
    plain = run_job(train(_config(bags, tmp_path / "pool.safetensors", epochs=1))).path
    config = _config(bags, tmp_path / "cv.safetensors", method="mhim", teacher_init=plain)
    with pytest.raises(CheckpointError, match="test fold"):
        run_job(cross_validate(config, 3, resamples=10))


@pytest.mark.parametrize("init", ["none", "fc", "all"])
def test_student_starts_as_init_student_says(bags, tmp_path, init) -> None:
    plain = run_job(train(_config(bags, tmp_path / "plain.safetensors", epochs=1))).path
    config = _config(
        bags, tmp_path / f"{init}.safetensors", method="mhim", epochs=1, teacher_init=plain,
        lr=1e-12, mhim=MHIMConfig(init_student=init),
    )  # fmt: skip
    student = load_checkpoint(run_job(train(config)).path).model.state_dict()
    reference = load_checkpoint(plain).model.state_dict()

    def same(prefix: str) -> bool:
        keys = [k for k in reference if k.startswith(prefix)]
        return all(torch.allclose(student[k], reference[k], atol=1e-6) for k in keys)

    assert same("embedding.") == (init in ("fc", "all"))
    assert same("classifier.") == (init == "all")


def test_self_warmup_stays_an_option(bags, tmp_path) -> None:
    config = _config(
        bags, tmp_path / "self.safetensors", method="mhim", epochs=3,
        mhim=MHIMConfig(teacher_source="self"),
    )  # fmt: skip
    assert config.mhim_warmup_epochs() == 1
    result = run_job(train(config))
    assert result.teacher_path is None
    assert not (tmp_path / "self_teacher.safetensors").exists()


def test_presets_fill_what_the_user_did_not_say(bags, tmp_path) -> None:
    base = _config(bags, tmp_path / "p.safetensors")
    user = _config(bags, tmp_path / "p.safetensors", epochs=7)
    user.mhim.mask_ratio_high = 0.2
    chosen = apply_preset(user, "journal-camelyon16-abmil", explicit_settings(user, base))
    assert chosen.epochs == 7
    assert chosen.mhim.mask_ratio_high == 0.2
    assert chosen.mhim.mask_score == "cls_prob"
    assert chosen.mhim.recycle_tokens == 1
    assert chosen.model_config == "reference"
    assert chosen.balance == "none"
    assert chosen.stop_epoch == 100  # beyond the user's 7 epochs: no early stop
    assert chosen.preset == "journal-camelyon16-abmil"
    assert chosen.to_meta()["preset"] == "journal-camelyon16-abmil"
    for name in PRESETS:
        apply_preset(base, name, set()).validate()


def test_a_dsmil_preset_trains_and_is_recorded(bags, tmp_path) -> None:
    """The ICCV DSMIL command end to end (plain teacher, Adam, per-epoch cosine, the
    teacher in train mode, the class-row consistency), shrunk to two epochs."""
    user = _config(bags, tmp_path / "ds.safetensors", model="dsmil")
    base = _config(bags, tmp_path / "ds.safetensors")
    config = apply_preset(user, "iccv-camelyon16-dsmil", explicit_settings(user, base))
    assert config.model_kwargs == {"hidden_dim": 16}
    result = run_job(train(config))
    training = read_meta(result.path).training
    assert training["preset"] == "iccv-camelyon16-dsmil"
    assert training["optimizer"] == "adam"
    assert training["lr_schedule"] == "epoch"
    assert training["teacher_mode"] == "train"
    assert training["model_kwargs"]["fusion"] == "probabilities"
    assert read_meta(result.teacher_path).training["method"] == "plain"


@pytest.mark.parametrize(
    ("settings", "stops_at", "kept"),
    [({}, 2, 1), ({"stop_epoch": 3}, 5, 1), ({"min_epochs": 3}, 4, 3)],
)
def test_stop_epoch_delays_the_stop_but_not_the_choice(
    bags, tmp_path, settings, stops_at, kept
) -> None:
    """The reference's stop_epoch: no early stop until the 0-based epoch exceeds it, and
    the best epoch may come before it; min_epochs limits the choice too."""
    config = _config(bags, tmp_path / "s.safetensors", epochs=8, patience=1, **settings)
    run = SimpleNamespace(
        config=config, history=[], epoch=0, warmup_mhim=0, best_score=None, best_epoch=0,
        stale=0, best_figures={}, best_state={}, model=torch.nn.Linear(1, 1), teacher=None,
    )  # fmt: skip
    aucs = iter([0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    stopped = next(e for e in range(1, 9) if select(run, {"val_auc": next(aucs), "val_loss": 1.0}))
    assert (stopped, run.best_epoch) == (stops_at, kept)


def test_selection_waits_for_min_epochs(bags, tmp_path) -> None:
    config = _config(bags, tmp_path / "m.safetensors", epochs=4, min_epochs=3, patience=1)
    result = run_job(train(config))
    assert result.metrics["best_epoch"] >= 3
    assert result.metrics["epochs_run"] >= 3
    loss = run_job(train(_config(bags, tmp_path / "l.safetensors", selection_metric="loss")))
    best = min(result_loss["val_loss"] for result_loss in loss.history)
    assert loss.metrics["val_loss"] == pytest.approx(best)
