"""Checks of a checkpoint when it is loaded: nothing absurd reaches a model or a decision.

A readable checkpoint can still be wrong: NaN weights (a diverged training, a damaged file)
give NaN probabilities that look like results; a NaN threshold labels every slide the
same; ``hidden_dim=1e7`` asks for terabytes before anything fails. :mod:`checkpoints`
calls these checks on every load and raises the errors below (all
:class:`~slidescope.models.errors.CheckpointError`, so all ``ModelError``), each naming
the file and the reason.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from slidescope.models.errors import CheckpointError
from torch import Tensor

if TYPE_CHECKING:
    from slidescope.models.checkpoints import CheckpointMeta

#: bounds of the size arguments of a checkpoint's model (dims, head / class / concept counts)
MAX_DIM = 65_536
MAX_CLASSES = 4_096


class InvalidCheckpointError(CheckpointError):
    """A readable checkpoint whose content cannot be trusted: refused when it is loaded."""


class NonFiniteWeightsError(InvalidCheckpointError):
    """Some weights are NaN or infinite (the model would give NaN probabilities)."""


class InvalidThresholdError(InvalidCheckpointError):
    """The decision threshold is not a finite number."""


class InvalidArchitectureError(InvalidCheckpointError):
    """The architecture arguments are absurd (sizes out of range, NaN rates)."""


class WeightShapeError(InvalidCheckpointError):
    """The weights are missing, unexpected or of other shapes than the metadata's model."""


def _is_size_argument(name: str) -> bool:
    return name.endswith(("_dim", "_dims")) or name.startswith(("n_", "num_")) or name == "k"


def validate_meta(meta: CheckpointMeta, source: str) -> None:
    """Refuse metadata that would build an absurd model or give meaningless decisions.

    Parameters
    ----------
    meta : CheckpointMeta
        The checkpoint's metadata.
    source : str
        The file's name, for the messages.

    Raises
    ------
    InvalidThresholdError
        The threshold is present but not a finite number in [0, 1].
    InvalidArchitectureError
        ``in_dim``, ``n_classes`` or a size argument (``*_dim``, ``n_*``) is not an integer
        in range ([1, 65536]; classes [1, 4096]), or a numeric argument is not finite, or
        a dropout is outside [0, 1).
    """
    if meta.threshold is not None and (
        isinstance(meta.threshold, bool)
        or not isinstance(meta.threshold, (int, float))
        or not math.isfinite(meta.threshold)
        or not 0.0 <= meta.threshold <= 1.0
    ):
        raise InvalidThresholdError(
            f"{source}: its decision threshold is {meta.threshold!r}, not a probability in "
            "[0, 1]; every slide would get the same call. Re-save the model with a threshold chosen "
            "on validation data, or none"
        )
    problems = []
    for name, value, high in (
        ("in_dim", meta.in_dim, MAX_DIM),
        ("n_classes", meta.n_classes, MAX_CLASSES),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
            problems.append(f"{name}={value!r} (expected an integer in [1, {high}])")
    names = list(meta.class_names or [])
    if names and isinstance(meta.n_classes, int) and len(names) != meta.n_classes:
        problems.append(
            f"{len(names)} class names ({', '.join(map(str, names))}) for "
            f"n_classes={meta.n_classes}"
        )
    if not isinstance(meta.arch_kwargs, dict):
        problems.append(f"arch_kwargs={meta.arch_kwargs!r} (expected a mapping)")
    else:
        for name, value in sorted(meta.arch_kwargs.items()):
            problems.extend(_argument_problems(str(name), value))
    if problems:
        raise InvalidArchitectureError(
            f"{source}: its model arguments are out of range: {'; '.join(problems)}. The file "
            "is damaged or was not written by SlideScope; retrain or use another checkpoint"
        )


def _argument_problems(name: str, value: Any) -> list[str]:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return []
    if isinstance(value, (list, tuple)):
        return [p for item in value for p in _argument_problems(name, item)]
    if not isinstance(value, (int, float)):
        return [f"{name}={value!r} (not a number, text or flag)"]
    if not math.isfinite(value):
        return [f"{name}={value!r} (not a finite number)"]
    if _is_size_argument(name) and (not float(value).is_integer() or not 1 <= value <= MAX_DIM):
        return [f"{name}={value!r} (expected an integer in [1, {MAX_DIM}])"]
    if "dropout" in name and not 0.0 <= value < 1.0:
        return [f"{name}={value!r} (expected a rate in [0, 1))"]
    return []


def check_finite(state: dict[str, Tensor], source: str, what: str) -> None:
    """Raise :class:`NonFiniteWeightsError` naming the tensors that hold NaN or infinity.

    Parameters
    ----------
    state : dict
        Tensors by name.
    source : str
        The file's name, for the message.
    what : str
        What the tensors are ("the model", "the MHIM teacher").
    """
    bad = []
    for key, tensor in state.items():
        if tensor.is_floating_point() or tensor.is_complex():
            finite = torch.isfinite(tensor)
            if not bool(finite.all()):
                bad.append(f"{key} ({int((~finite).sum())} of {tensor.numel()} values)")
    if bad:
        raise NonFiniteWeightsError(
            f"{source}: {what} has NaN or infinite weights in {len(bad)} tensor(s): "
            f"{', '.join(bad[:5])}. It would give NaN probabilities; the file is damaged or "
            "training diverged: retrain, or use an earlier checkpoint"
        )
