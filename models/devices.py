"""Which torch device a job runs on, from the name a user gives (``--device``)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from slidescope.models.errors import ModelError

if TYPE_CHECKING:
    import torch


class DeviceError(ModelError, ValueError):
    """The asked device does not exist or cannot be used here."""


class DeviceMemoryError(ModelError):
    """The GPU has not enough memory for the work asked of it, even in its smallest form."""


def allocation_of(error: BaseException) -> str:
    """``tried to allocate 2.00 GiB`` from torch's out-of-memory message, else ``out of memory``."""
    found = re.search(r"[Tt]ried to allocate [\d.]+ ?[KMGT]i?B", str(error))
    return found.group(0).lower() if found else "out of memory"


def check_device_name(name: str) -> None:
    """Raise :class:`DeviceError` unless ``name`` is ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    if name in ("auto", "cpu", "cuda"):
        return
    if name.startswith("cuda:") and name[5:].isdigit():
        return
    raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N")


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; an unusable CUDA is an error.

    Raises
    ------
    DeviceError
        For an unknown name, or a CUDA device on a machine whose torch sees none.
    """
    import torch  # here: checking a name needs no torch (the window starts without it)

    check_device_name(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"device {name!r} asked for, but torch sees no CUDA GPU; use --device cpu"
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {name!r} asked for, but there are {torch.cuda.device_count()} GPU(s)"
            )
    return device


@contextmanager
def gpu_memory_explained(what: str, advice: str) -> Iterator[None]:
    """Re-raise the GPU's out-of-memory error as a :class:`DeviceMemoryError`.

    Its message: ``<what>: the GPU ran out of memory (tried to allocate ...); <advice>``.
    The allocator's cached blocks are handed back first (the error held the tensors).
    """
    import torch

    try:
        yield
    except torch.OutOfMemoryError as error:
        detail = allocation_of(error)
    else:
        return
    torch.cuda.empty_cache()
    raise DeviceMemoryError(f"{what}: the GPU ran out of memory ({detail}); {advice}")


def usable_cores() -> int:
    """CPU cores this process may use (its affinity, where the system tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def describe_device(device: torch.device) -> str:
    """``cuda:0 (NVIDIA H200, 140 GiB)`` or ``cpu (16 cores)``: what a run goes on, in words."""
    import torch

    if device.type != "cuda":
        return f"{device.type} ({usable_cores()} cores)"
    index = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(index)
    return f"cuda:{index} ({props.name}, {props.total_memory / 2**30:.0f} GiB)"
