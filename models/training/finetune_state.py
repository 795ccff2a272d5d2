"""The resume state of a fine-tuning run: everything needed to go on after a kill -9.

Written atomically after every finished epoch (``torch.save`` of tensors, numbers and
strings only, read back with ``weights_only=True``): the student, teacher and recycle
weights, the optimiser, the random generators, the history and the best epoch so far. A
state whose fingerprint (the base checkpoint, the data and the settings) is not the run's
is ignored: the run then starts again from the base.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from typing import Any

import torch
from slidescope.models.files import atomic_path


def fingerprint(parts: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of what defines a run."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write the state atomically (a crash leaves the previous epoch's state intact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_state(path: Path, expected_fingerprint: str) -> dict[str, Any] | None:
    """The saved state when it belongs to this run, else None (a damaged file is ignored)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError):
        return None
    if not isinstance(state, dict) or state.get("fingerprint") != expected_fingerprint:
        return None
    return state
