"""Run a fine-tuning in this process and SIGKILL it in the middle of epoch ``KILL_EPOCH``.

Usage: ``python finetune_child.py WORK KILL_EPOCH`` (the base and bags are made in WORK).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from finetune_bags import make_bags
from slidescope.models.jobs import run_job
from slidescope.models.training.finetune import finetune_model
from slidescope.models.training.finetune_settings import FinetuneSettings

if __name__ == "__main__":
    work, kill_epoch = Path(sys.argv[1]), int(sys.argv[2])
    torch.set_num_threads(1)
    bags = make_bags(work / "bags")
    settings = FinetuneSettings(epochs=4, validation="off", device="cpu", seed=3)
    job = finetune_model(
        work / "base.safetensors", bags, ["lesion", "normal"], settings,
        work / "new.safetensors", work / "new.state", {"base": {"sha256": "abc"}},
    )  # fmt: skip

    def maybe_die(progress) -> None:
        if progress.what == f"epoch {kill_epoch}/4" and progress.done % len(bags) == 3:
            os.kill(os.getpid(), signal.SIGKILL)

    run_job(job, on_progress=maybe_die)
