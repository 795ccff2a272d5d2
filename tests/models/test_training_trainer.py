"""The training job through its Python API: plain, MHIM, AEM, survival, determinism."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from slidescope.models.checkpoints import load_checkpoint
from slidescope.models.devices import DeviceMemoryError
from slidescope.models.errors import FeatureFileError
from slidescope.models.jobs import Progress, run_job
from slidescope.models.training.config import MHIMConfig, TrainingConfig, TrainingConfigError
from slidescope.models.training.labels import LabelsError
from slidescope.models.training.trainer import TrainingResult, train
from training_bags import planted_bags, survival_bags, write_feature_file

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def bags(tmp_path_factory) -> tuple[Path, Path]:
    return planted_bags(tmp_path_factory.mktemp("bags") / "feats", n_bags=40, seed=3)


def _config(bags: tuple[Path, Path], out: Path, **kwargs) -> TrainingConfig:
    folder, labels = bags
    settings = {"epochs": 4, "lr": 1e-3, "model_kwargs": {"hidden_dim": 32}, "patience": 0}
    settings.update(kwargs)
    return TrainingConfig(features=folder, labels=labels, out=out, **settings)


def _run(config: TrainingConfig) -> tuple[TrainingResult, list[Progress]]:
    steps: list[Progress] = []
    return run_job(train(config), on_progress=steps.append), steps


def test_plain_training_job_progress_and_checkpoint(bags, tmp_path) -> None:
    result, steps = _run(_config(bags, tmp_path / "m.safetensors"))
    assert result.path.exists()
    assert steps[-1].total == steps[1].total
    assert all(isinstance(s, Progress) for s in steps)
    epochs = [s for s in steps if s.metrics]
    assert [s.metrics["epoch"] for s in epochs] == [1, 2, 3, 4]
    loaded = load_checkpoint(result.path)
    meta = loaded.meta
    assert meta.architecture == "abmil"
    assert meta.extractor == "synthetic"
    assert meta.patch_size == 256
    assert meta.target_mpp == pytest.approx(0.5)
    assert meta.class_names == ["0", "1"]
    assert meta.threshold == result.threshold
    assert meta.training["method"] == "plain"
    assert loaded.teacher is None
    # the standardisation was fitted: features carry a +5 offset
    assert float(loaded.model.feature_mean.mean()) == pytest.approx(5.0, abs=0.3)


def test_mhim_saves_teacher_and_settings(bags, tmp_path) -> None:
    config = _config(bags, tmp_path / "mhim.safetensors", method="mhim")
    config.mhim = MHIMConfig(mask_ratio_high=0.05, mask_ratio_low=0.1, mask_score="cls_prob")
    result, _ = _run(config)
    loaded = load_checkpoint(result.path)
    assert loaded.teacher is not None
    training = loaded.meta.training
    for key in (
        "mask_ratio_high", "mask_ratio_high_random", "mask_ratio_low", "mask_ratio_random",
    ):  # fmt: skip
        assert key in training
    assert training["method"] == "mhim"
    assert training["mask_ratio_high"] == 0.05
    assert training["mask_score"] == "cls_prob"
    # the teacher is an EMA of the student, not the student itself
    student = loaded.model.state_dict()
    teacher = loaded.teacher.state_dict()
    assert any(not torch.equal(student[k], teacher[k]) for k in student)


def test_mhim_keeps_a_model_trained_with_masking(bags, tmp_path) -> None:
    """With a self warm-up, the plain epochs (first fifth) only prepare the teacher: even
    when validation peaks there, the model kept comes from an epoch after it."""
    config = _config(bags, tmp_path / "mhim.safetensors", method="mhim", epochs=5)
    config.mhim = MHIMConfig(teacher_source="self")
    assert config.mhim_warmup_epochs() == 1
    result, _ = _run(config)
    assert result.metrics["best_epoch"] > 1
    assert result.metrics["epochs_run"] == 5


def test_same_seed_same_weights(bags, tmp_path) -> None:
    def weights(name: str) -> dict[str, torch.Tensor]:
        config = _config(bags, tmp_path / name, method="mhim", epochs=2)
        config.mhim = MHIMConfig(warmup_epochs=0, mask_ratio_high=0.05)
        result, _ = _run(config)
        return load_file(str(result.path))

    first, second = weights("a.safetensors"), weights("b.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    config = _config(bags, tmp_path / "c.safetensors", method="mhim", epochs=2, seed=7)
    config.mhim = MHIMConfig(warmup_epochs=0, mask_ratio_high=0.05)
    other = load_file(str(_run(config)[0].path))
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_aem_and_balanced_sampling_run(bags, tmp_path) -> None:
    result, _ = _run(_config(bags, tmp_path / "aem.safetensors", aem=0.1, balance="sampling"))
    assert load_checkpoint(result.path).meta.training["aem"] == 0.1


@pytest.mark.slow
def test_multiclass_learns(tmp_path) -> None:
    folder, labels = planted_bags(tmp_path / "mc", n_bags=60, n_classes=3, seed=5)
    config = TrainingConfig(
        features=folder, labels=labels, out=tmp_path / "mc.safetensors", epochs=10, lr=2e-3,
        model_kwargs={"hidden_dim": 32}, patience=0,
    )  # fmt: skip
    result, _ = _run(config)
    assert result.threshold is None
    assert result.metrics["val_balanced_accuracy"] >= 0.75
    assert load_checkpoint(result.path).meta.class_names == ["class_0", "class_1", "class_2"]


@pytest.mark.slow
def test_survival_training(tmp_path) -> None:
    folder, labels = survival_bags(tmp_path / "surv", n_bags=60)
    config = TrainingConfig(
        features=folder, labels=labels, out=tmp_path / "s.safetensors", task="survival",
        epochs=8, lr=1e-3, model_kwargs={"hidden_dim": 32}, patience=0,
    )  # fmt: skip
    result, _ = _run(config)
    meta = load_checkpoint(result.path).meta
    assert meta.task == "survival"
    assert meta.n_classes == 4
    assert len(meta.training["survival_bin_edges"]) == 3
    assert result.metrics["val_c_index"] > 0.6


def test_teacher_init_starts_student_from_checkpoint(bags, tmp_path) -> None:
    plain, _ = _run(_config(bags, tmp_path / "plain.safetensors", epochs=2))
    config = _config(
        bags, tmp_path / "init.safetensors", method="mhim", epochs=1, teacher_init=plain.path
    )
    assert config.mhim_warmup_epochs() == 0
    result, _ = _run(config)
    assert load_checkpoint(result.path).meta.training["teacher_init"] == str(plain.path)
    wrong = _config(bags, tmp_path / "x.safetensors", method="mhim", teacher_init=plain.path)
    wrong.model = "abmil_gated"
    with pytest.raises(Exception, match="abmil"):
        _run(wrong)


def test_missing_feature_files_listed_or_skipped(bags, tmp_path) -> None:
    folder, labels = bags
    extended = tmp_path / "labels.csv"
    rows = list(csv.reader(labels.open()))
    rows += [["ghost_1", "0", "train"], ["ghost_2", "1", "train"]]
    with extended.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    config = _config((folder, extended), tmp_path / "m.safetensors", epochs=1)
    with pytest.raises(FeatureFileError, match="ghost_1, ghost_2"):
        _run(config)
    with pytest.warns(UserWarning, match="leaving out 2"):
        result, _ = _run(dataclasses.replace(config, skip_missing=True))
    assert result.path.exists()


def test_mixed_extractors_refused(tmp_path) -> None:
    folder, labels = planted_bags(tmp_path / "mix", n_bags=10)
    write_feature_file(folder / "slide_000.h5", np.zeros((5, 32)), extractor="other")
    with pytest.raises(FeatureFileError, match="mix extractors"):
        _run(_config((folder, labels), tmp_path / "m.safetensors"))


def test_bad_settings_and_labels(bags, tmp_path) -> None:
    with pytest.raises(TrainingConfigError, match="method"):
        _run(_config(bags, tmp_path / "m.safetensors", method="magic"))
    bad = tmp_path / "bad.csv"
    bad.write_text("slide,label\na,1\n")
    with pytest.raises(LabelsError, match="slide_id"):
        _run(_config((bags[0], bad), tmp_path / "m.safetensors"))


def test_cancel_closes_job(bags, tmp_path) -> None:
    out = tmp_path / "cancel.safetensors"
    job = train(_config(bags, out, epochs=3))
    for _ in range(5):
        next(job)
    job.close()
    assert not out.exists()


def test_safe_std_guards_constant_features() -> None:
    from slidescope.models.training.trainer import safe_std

    std = safe_std(np.array([0.0, 1e-9, 2.0, 4.0, 3.0], np.float32))
    assert std[0] == 1.0
    assert std[1] == pytest.approx(0.025)  # 1 % of the median 2.5
    assert std[2:].tolist() == [2.0, 4.0, 3.0]
    assert safe_std(np.zeros(3, np.float32)).tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("min_lr", [0.0, 1e-7])
def test_epoch_schedule_is_the_references_per_epoch_cosine(bags, tmp_path, min_lr) -> None:
    """``lr_schedule="epoch"``: the rate of ``CosineAnnealingLR(T_max=epochs, eta_min)``
    stepped once per epoch (``v1:main.py:252-253,606-607``; the journal's timm cosine,
    ``min_lr`` 1e-7), held through every step of the epoch."""
    from slidescope.models.training.setup import lr_lambda

    config = _config(
        bags, tmp_path / "m.safetensors", epochs=5, lr=2e-4, lr_schedule="epoch", min_lr=min_lr
    )
    factor = lr_lambda(config, steps_per_epoch=3)
    optimiser = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, 5, eta_min=min_lr)
    for epoch in range(5):
        for step in range(3):
            assert 2e-4 * factor(epoch * 3 + step) == pytest.approx(
                optimiser.param_groups[0]["lr"], rel=1e-9, abs=1e-15
            )
        optimiser.step()
        reference.step()


def test_step_schedule_and_adamw_stay_the_defaults(bags, tmp_path) -> None:
    from slidescope.models.training.setup import lr_factor, lr_lambda

    config = _config(bags, tmp_path / "m.safetensors", epochs=2)
    assert (config.optimizer, config.lr_schedule, config.min_lr) == ("adamw", "step", None)
    factor = lr_lambda(config, steps_per_epoch=10)
    assert [factor(s) for s in (0, 7, 19)] == [lr_factor(s, 20, 0) for s in (0, 7, 19)]
    assert lr_factor(20, 20, 0) == pytest.approx(0.01)  # the 1 % floor
    with pytest.raises(TrainingConfigError, match="optimizer"):
        _config(bags, tmp_path / "m.safetensors", optimizer="sgd")


def test_the_training_package_names_resolve_on_first_use() -> None:
    """``slidescope.models.training`` imports its parts on first use (a light submodule
    such as ``finetune_settings`` does not bring torch); every public name still resolves."""
    import slidescope.models.training as training

    assert sorted(training.__all__) == sorted(training._FROM)
    for name in training.__all__:
        assert getattr(training, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nothing_here'"):
        training.nothing_here  # noqa: B018


def test_a_gpu_short_of_memory_says_what_to_do(bags, tmp_path, monkeypatch) -> None:
    from slidescope.models.training import trainer

    def on_a_small_gpu(run: object) -> object:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 9.00 GiB. GPU 0")
        yield  # a job, as run_epoch is

    monkeypatch.setattr(trainer, "run_epoch", on_a_small_gpu)
    message = (
        r"^training abmil: the GPU ran out of memory \(tried to allocate 9.00 gib\); "
        r"cap the patches per bag \(--max-instances\) or train on the CPU \(--device cpu\)$"
    )
    with pytest.raises(DeviceMemoryError, match=message):
        _run(_config(bags, tmp_path / "m.safetensors"))
    assert not (tmp_path / "m.safetensors").exists()
