"""Losses, teacher EMA and recycle network against their formulas."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from slidescope.models.training.losses import (
    attention_entropy,
    consistency_loss,
    survival_nll,
    survival_risk,
)
from slidescope.models.training.recycle import GlobalRecycle
from slidescope.models.training.teacher import ema_update, make_teacher, momentum_schedule
from torch import nn


def test_consistency_loss_by_hand() -> None:
    s = torch.tensor([0.2, -1.0, 0.5])
    t = torch.tensor([1.0, 0.0, -0.3])
    expected = 0.0
    p_t = [math.exp(v / 0.1) for v in t.tolist()]
    p_t = [v / sum(p_t) for v in p_t]
    log_z = math.log(sum(math.exp(v / 1.0) for v in s.tolist()))
    for p, v in zip(p_t, s.tolist()):
        expected -= p * (v - log_z)
    assert float(consistency_loss(s, t)) == pytest.approx(expected, rel=1e-6)


def test_consistency_loss_no_grad_into_teacher_feature() -> None:
    s = torch.randn(8, requires_grad=True)
    t = torch.randn(8, requires_grad=True)
    consistency_loss(s, t).backward()
    assert s.grad is not None
    assert t.grad is None


def test_attention_entropy_formula() -> None:
    a = torch.tensor([0.5, 0.25, 0.25])
    expected = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))
    assert float(attention_entropy(a)) == pytest.approx(expected)
    assert float(attention_entropy(torch.ones(8) / 8)) == pytest.approx(math.log(8))


def test_survival_nll_by_hand() -> None:
    logits = torch.tensor([[0.1, -0.4, 0.3, 0.0], [1.0, 0.5, -1.0, 0.2]])
    h = torch.sigmoid(logits)
    # slide 0: event in bin 2; slide 1: censored in bin 1
    s0_before = (1 - h[0, 0]) * (1 - h[0, 1])
    uncensored = -(torch.log(s0_before) + torch.log(h[0, 2]))
    censored = -torch.log((1 - h[1, 0]) * (1 - h[1, 1]))
    expected = (uncensored + censored) / 2
    got = survival_nll(logits, torch.tensor([2, 1]), torch.tensor([1, 0]))
    assert float(got) == pytest.approx(float(expected), rel=1e-6)
    alpha = survival_nll(logits, torch.tensor([2, 1]), torch.tensor([1, 0]), alpha=0.4)
    assert float(alpha) == pytest.approx(float(0.6 * expected + 0.4 * uncensored / 2), rel=1e-6)


def test_survival_nll_event_in_first_bin() -> None:
    logits = torch.tensor([0.3, 0.0, 0.0, 0.0])
    got = survival_nll(logits, torch.tensor(0), torch.tensor(1))
    assert float(got) == pytest.approx(-math.log(torch.sigmoid(torch.tensor(0.3)).item()))


def test_survival_risk_orders_hazards() -> None:
    risk = survival_risk(torch.tensor([[3.0, 3, 3, 3], [-3.0, -3, -3, -3]]))
    assert risk[0] > risk[1]


def test_ema_update_formula_and_frozen_teacher() -> None:
    torch.manual_seed(0)
    student = nn.Linear(3, 2)
    teacher = make_teacher(student)
    assert not teacher.training
    assert all(not p.requires_grad for p in teacher.parameters())
    before = teacher.weight.clone()
    with torch.no_grad():
        student.weight.add_(1.0)
    ema_update(teacher, student, 0.9)
    assert torch.allclose(teacher.weight, 0.9 * before + 0.1 * student.weight)


def test_teacher_receives_no_gradient() -> None:
    student = nn.Linear(4, 2)
    teacher = make_teacher(student)
    x = torch.randn(5, 4)
    loss = consistency_loss(student(x).flatten(), teacher(x).flatten())
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert student.weight.grad is not None


def test_momentum_schedule() -> None:
    assert momentum_schedule(0.9999, None, 3) == [0.9999] * 3
    values = momentum_schedule(0.99, 1.0, 10)
    assert values[0] == pytest.approx(0.99)
    assert all(a <= b for a, b in itertools.pairwise(values))
    assert values[-1] < 1.0
    assert values[-1] > 0.999


def test_recycle_tokens_shape_and_query_ema() -> None:
    torch.manual_seed(0)
    recycle = GlobalRecycle(dim=32, tokens=5, heads=4, momentum=0.5, dropout=0.0)
    queries = recycle.queries.clone()
    h = torch.randn(40, 32, requires_grad=True)
    tokens = recycle(h)
    assert tokens.shape == (5, 32)
    assert torch.allclose(recycle.queries, 0.5 * queries + 0.5 * tokens.detach())
    tokens.sum().backward()
    assert h.grad is not None
    recycle.eval()
    frozen = recycle.queries.clone()
    recycle(h)
    assert torch.equal(recycle.queries, frozen)


def test_recycle_equals_plain_multihead_cross_attention() -> None:
    torch.manual_seed(1)
    recycle = GlobalRecycle(dim=24, tokens=3, heads=2, momentum=1.0, dropout=0.0)
    h = torch.randn(17, 24)
    tokens = recycle(h)
    q = recycle.to_q(recycle.norm(recycle.queries)).view(3, 2, -1).transpose(0, 1)
    x = recycle.norm(h)
    k = recycle.to_k(x).view(17, 2, -1).transpose(0, 1)
    v = recycle.to_v(x).view(17, 2, -1).transpose(0, 1)
    attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(recycle.head_dim), dim=-1)
    expected = recycle.to_out((attention @ v).transpose(0, 1).reshape(3, -1))
    assert torch.allclose(tokens, expected, atol=1e-5)


def test_recycle_defaults_follow_the_journal_reference() -> None:
    from slidescope.models.training.config import MHIMConfig

    recycle = GlobalRecycle(dim=512)
    assert recycle.queries.shape == (1, 512)  # k = 1
    assert recycle.heads == 8
    assert recycle.head_dim == 64
    assert recycle.dropout.p == 0.1
    assert recycle.momentum == 0.9999
    mhim = MHIMConfig()
    assert (mhim.recycle_tokens, mhim.recycle_heads, mhim.recycle_dropout) == (1, 8, 0.1)
    assert mhim.recycle_momentum == 0.9999
    assert mhim.recycle_source == "student"


def test_recycled_instances_train_the_student_embedding() -> None:
    """Student source (the reference): the gradient reaches the embedding of masked rows
    through the global token. With recycling no instance is lost: merge_ratio only moves
    instances from the student's view into the recycled set (the journal's semantics)."""
    from slidescope.models.mil import create_model
    from slidescope.models.training.config import MHIMConfig
    from slidescope.models.training.steps import BagTarget, LossSettings, mhim_step
    from slidescope.models.training.teacher import make_teacher

    torch.manual_seed(0)
    model = create_model("abmil", 8, 2, hidden_dim=16, dropout=0.0)
    teacher = make_teacher(model)
    recycle = GlobalRecycle(16, dropout=0.0)
    x = torch.randn(50, 8, requires_grad=True)
    mhim = MHIMConfig(mask_ratio_high=0.0, mask_ratio_random=0.6)
    gen = torch.Generator().manual_seed(0)
    loss, info = mhim_step(
        model, teacher, recycle, x, BagTarget(1), LossSettings(), mhim, 0.0, gen
    )
    loss.backward()
    touched = int((x.grad.abs().sum(dim=1) > 0).sum())
    assert info["kept"] == 20
    assert touched == 50  # 20 kept + 30 recycled

    def touched_rows(mhim: MHIMConfig, recycler: GlobalRecycle | None) -> tuple[int, float]:
        x.grad = None
        loss, info = mhim_step(
            model, teacher, recycler, x, BagTarget(1), LossSettings(), mhim, 0.0, gen
        )
        loss.backward()
        return int((x.grad.abs().sum(dim=1) > 0).sum()), info["kept"]

    both = MHIMConfig(mask_ratio_high=0.0, mask_ratio_random=0.6, merge_ratio=0.2)
    # 30 random + 16 of the 20 left merged; the student sees floor(20 * 0.2) = 4
    assert touched_rows(both, recycle) == (50, 4)
    # the journal command: no random mask, int(50 * 0.8) = 40 seen, 10 merged
    journal = MHIMConfig(mask_ratio_high=0.0, mask_ratio_random=0.0, merge_ratio=0.8)
    assert touched_rows(journal, recycle) == (50, 40)
    # without the recycle network (ICCV) the random mask discards and merge_ratio is unused
    assert touched_rows(both, None) == (20, 20)


def test_dsmil_consistency_is_one_softmax_per_class_row() -> None:
    """The reference compares DSMIL's bag feature B (C x H) row by row and averages the
    rows (``v1:main.py:530``, ``v1:modules/mhim.py:18-30``), not as one C*H vector."""
    from slidescope.models.mil import create_model
    from slidescope.models.training.config import MHIMConfig
    from slidescope.models.training.steps import BagTarget, LossSettings, mhim_step

    torch.manual_seed(0)
    model = create_model("dsmil", 8, 3, hidden_dim=16, dropout=0.0)
    teacher = make_teacher(model)
    x = torch.randn(40, 8)
    mhim = MHIMConfig(mask_ratio_high=0.0, mask_ratio_random=0.0, recycle=False)
    gen = torch.Generator().manual_seed(0)
    _, info = mhim_step(model, teacher, None, x, BagTarget(1), LossSettings(), mhim, 0.0, gen)
    rows = teacher(x).bag_feature.detach().reshape(3, 16)
    per_row = -(torch.softmax(rows / 0.1, dim=1) * torch.log_softmax(rows, dim=1)).sum(dim=1)
    assert info["consistency"] == pytest.approx(float(per_row.mean()), rel=1e-5)
    flat = consistency_loss(rows.flatten(), rows.flatten())
    assert info["consistency"] != pytest.approx(float(flat), rel=1e-3)
