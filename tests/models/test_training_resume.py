"""A killed ``train`` continues from its last finished epoch and ends as an unkilled run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from slidescope.models.jobs import run_job
from slidescope.models.training.config import TrainingConfig
from slidescope.models.training.resume import state_path
from slidescope.models.training.trainer import train
from training_bags import planted_bags

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EPOCHS = 4

#: run in a child process: train, and SIGKILL ourselves right after epoch 2's state is saved
_CHILD = textwrap.dedent(
    """
    import os, signal, sys, torch
    torch.set_num_threads(1)
    from slidescope.models.training.config import TrainingConfig, MHIMConfig
    from slidescope.models.training.trainer import train
    folder, labels, out, epochs = sys.argv[1:5]
    config = TrainingConfig(
        features=folder, labels=labels, out=out, epochs=int(epochs), lr=1e-3, patience=0,
        model_kwargs={"hidden_dim": 16}, method="mhim",
        mhim=MHIMConfig(mask_ratio_high=0.05, teacher_epochs=2),
    )
    for step in train(config):
        if step.what.startswith("epoch 2/") and ":" in step.what:
            os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _config(folder: Path, labels: Path, out: Path) -> TrainingConfig:
    from slidescope.models.training.config import MHIMConfig

    return TrainingConfig(
        features=folder, labels=labels, out=out, epochs=EPOCHS, lr=1e-3, patience=0,
        model_kwargs={"hidden_dim": 16}, method="mhim",
        mhim=MHIMConfig(mask_ratio_high=0.05, teacher_epochs=2),
    )  # fmt: skip


def test_killed_run_resumes_and_matches_an_unkilled_run(tmp_path) -> None:
    folder, labels = planted_bags(tmp_path / "feats", n_bags=16, n_instances=30, dim=16)
    out = tmp_path / "killed.safetensors"
    child = subprocess.run(
        [sys.executable, "-c", _CHILD, str(folder), str(labels), str(out), str(EPOCHS)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert child.returncode == -signal.SIGKILL, child.stderr[-2000:]
    assert not out.exists()
    assert state_path(out).is_file()  # epoch 2's state survived the kill
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp left over

    seen: list[str] = []
    resumed = run_job(
        train(_config(folder, labels, out)), on_progress=lambda p: seen.append(p.what)
    )
    # Only epochs 3 and 4 were trained again; the teacher run was not repeated.
    assert not any(w.startswith(("epoch 1/", "epoch 2/", "plain teacher")) for w in seen)
    assert any(w.startswith("epoch 4/") for w in seen)
    assert [h["epoch"] for h in resumed.history] == list(range(1, EPOCHS + 1))
    assert resumed.metrics["epochs_run"] == EPOCHS
    assert not state_path(out).exists()

    whole = run_job(train(_config(folder, labels, tmp_path / "whole.safetensors")))
    a, b = load_file(str(resumed.path)), load_file(str(whole.path))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6, msg=key)


def test_state_of_other_settings_is_ignored(tmp_path) -> None:
    folder, labels = planted_bags(tmp_path / "feats", n_bags=12, n_instances=20, dim=8)
    out = tmp_path / "m.safetensors"
    state_path(out).write_bytes(b"not a state file")
    config = TrainingConfig(
        features=folder, labels=labels, out=out, epochs=1, model_kwargs={"hidden_dim": 8}
    )
    with pytest.warns(UserWarning, match="unreadable saved training state"):
        result = run_job(train(config))
    assert result.metrics["epochs_run"] == 1
    assert not state_path(out).exists()


def test_diverging_run_fails_and_saves_nothing(tmp_path) -> None:
    from slidescope.models.training.run import TrainingDivergedError

    folder, labels = planted_bags(tmp_path / "feats", n_bags=12, n_instances=20, dim=8)
    out = tmp_path / "nan.safetensors"
    config = TrainingConfig(
        features=folder, labels=labels, out=out, epochs=2, lr=1e30, model_kwargs={"hidden_dim": 8}
    )
    with pytest.raises(TrainingDivergedError, match=r"diverged|NaN"):
        run_job(train(config))
    assert not out.exists()


def test_kill_leaves_previous_state_intact(tmp_path, monkeypatch) -> None:
    """A state write interrupted before its rename leaves the last good state."""
    from slidescope.models.training.resume import load_state, save_state

    out = tmp_path / "m.safetensors"
    save_state(out, {"fingerprint": "f", "epoch": 1})

    class Boom(Exception):
        pass

    original = torch.save

    def failing_save(obj, path):
        original(obj, path)
        raise Boom

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(Boom):
        save_state(out, {"fingerprint": "f", "epoch": 2})
    monkeypatch.undo()
    assert load_state(out, "f")["epoch"] == 1
    assert os.listdir(tmp_path) == [state_path(out).name]
