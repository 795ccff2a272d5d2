"""Resuming a killed training run: its whole state, saved atomically after every epoch.

The state file sits beside the checkpoint (``<out>.resume``) and holds the weights of
the student, the teacher and the recycle network, the optimiser and schedule, every
random generator, the history and the best epoch so far, so a run continued from it
trains exactly as the uninterrupted run would have. It is written through
:func:`slidescope.models.files.atomic_path` (a kill while writing leaves the previous
epoch's state) and read with ``weights_only=True``. A state whose run fingerprint (the
settings and the slides of the run) differs from the new run's is ignored: a changed
command starts afresh. The file is removed once the checkpoint is saved.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path
from typing import Any

import torch
from slidescope.models.files import atomic_path

#: settings that do not change what a run computes
_NOT_FINGERPRINTED = ("device", "resume", "cache_bytes", "out")


def state_path(out: Path) -> Path:
    """``<out>.resume`` beside the checkpoint."""
    return out.with_name(out.name + ".resume")


def run_fingerprint(settings: dict[str, Any], train_ids: list[str], val_ids: list[str]) -> str:
    """A digest of what a run computes: its settings and its training / validation slides."""
    kept = {k: v for k, v in settings.items() if k not in _NOT_FINGERPRINTED}
    document = json.dumps([kept, train_ids, val_ids], sort_keys=True, default=str)
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def save_state(out: Path, state: dict[str, Any]) -> None:
    """Write the run's state atomically."""
    with atomic_path(state_path(out)) as temp:
        torch.save(state, temp)


def load_state(out: Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved state of the same run, or None (no file, another run, unreadable)."""
    path = state_path(out)
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        warnings.warn(
            f"{path}: unreadable saved training state ({error}); starting afresh", stacklevel=2
        )
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint:
        warnings.warn(
            f"{path}: saved state of a run with other settings or slides; starting afresh",
            stacklevel=2,
        )
        return None
    return state


def clear_state(out: Path) -> None:
    """Remove the state file of a finished run."""
    state_path(out).unlink(missing_ok=True)



