"""The MHIM teacher: an exponential moving average of the student.

The teacher scores instances for masking and gives the consistency target. It never
receives gradients: its parameters have ``requires_grad=False``, it runs in eval mode
under ``torch.no_grad`` and changes only through :func:`ema_update` after every optimiser
step of the student.
"""

from __future__ import annotations

import copy
from typing import TypeVar

import torch
from slidescope.models.training.masking import cosine_schedule
from torch import nn

M = TypeVar("M", bound=nn.Module)


def make_teacher(student: M) -> M:
    """A frozen deep copy of ``student`` in eval mode."""
    teacher = copy.deepcopy(student)
    for parameter in teacher.parameters():
        parameter.requires_grad_(False)
    teacher.eval()
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher = momentum * teacher + (1 - momentum) * student``, parameter by parameter.

    Floating-point buffers (e.g. the input standardisation) are copied from the student,
    as they are not learnt.
    """
    for t_param, s_param in zip(teacher.parameters(), student.parameters(), strict=True):
        t_param.mul_(momentum).add_(s_param.detach(), alpha=1.0 - momentum)
    for t_buffer, s_buffer in zip(teacher.buffers(), student.buffers(), strict=True):
        t_buffer.copy_(s_buffer)


def momentum_schedule(start: float, final: float | None, total_steps: int) -> list[float]:
    """Teacher momentum per optimiser step: constant, or a cosine from ``start`` to ``final``."""
    if final is None:
        return [start] * max(total_steps, 0)
    return cosine_schedule(start, final, total_steps)
