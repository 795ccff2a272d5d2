"""Nyström self-attention (Xiong et al., 2021), the linear-cost attention of TransMIL.

Softmax attention ``softmax(QK^T) V`` is approximated through m landmarks (segment means
of the queries and keys): ``softmax(Q K_l^T) · pinv(softmax(Q_l K_l^T)) · softmax(Q_l K^T) V``,
which costs O(N m) instead of O(N^2). The pseudo-inverse is the iterative Moore-Penrose
approximation of the paper, and a depthwise convolution over the sequence of values adds
the paper's skip connection. The exact attention row of one query is available through
:meth:`NystromAttention.exact_row` for explaining a prediction.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def iterative_pinv(x: Tensor, iterations: int = 6) -> Tensor:
    """Moore-Penrose pseudo-inverse of a batch of row-stochastic matrices by iteration.

    Parameters
    ----------
    x : Tensor
        (..., m, m) matrices.
    iterations : int
        Newton-Schulz style iterations (the paper's 6 are enough for softmax matrices).

    Returns
    -------
    Tensor
        (..., m, m) approximate pseudo-inverses.
    """
    identity = torch.eye(x.shape[-1], dtype=x.dtype, device=x.device)
    absolute = x.abs()
    z = x.transpose(-1, -2) / (absolute.sum(-1).max() * absolute.sum(-2).max())
    for _ in range(iterations):
        xz = x @ z
        z = 0.25 * z @ (13 * identity - xz @ (15 * identity - xz @ (7 * identity - xz)))
    return z


class NystromAttention(nn.Module):
    """Multi-head Nyström self-attention over one sequence.

    Parameters
    ----------
    dim : int
        Token size.
    n_heads : int
        Number of heads (``dim`` must be divisible by it).
    n_landmarks : int
        Number of landmarks m.
    pinv_iterations : int
        Iterations of the pseudo-inverse.
    residual_kernel : int
        Kernel of the depthwise convolution over values (0 disables it).
    dropout : float
        Dropout on the output.
    """

    def __init__(
        self,
        dim: int,
        n_heads: int = 8,
        n_landmarks: int = 256,
        pinv_iterations: int = 6,
        residual_kernel: int = 33,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"token size {dim} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.head_dim = dim // n_heads
        self.n_landmarks = n_landmarks
        self.pinv_iterations = pinv_iterations
        self.scale = self.head_dim**-0.5
        self.to_qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.to_out = nn.Sequential(nn.Linear(dim, dim), nn.Dropout(dropout))
        self.residual: nn.Module | None = None
        if residual_kernel:
            self.residual = nn.Conv2d(
                n_heads,
                n_heads,
                (residual_kernel, 1),
                padding=(residual_kernel // 2, 0),
                groups=n_heads,
                bias=False,
            )

    def _heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        n = x.shape[0]
        q, k, v = self.to_qkv(x).reshape(n, 3, self.n_heads, self.head_dim).permute(1, 2, 0, 3)
        return q * self.scale, k, v  # each (heads, n, head_dim)

    def forward(self, x: Tensor) -> Tensor:
        """(n, dim) -> (n, dim)."""
        n = x.shape[0]
        m = min(self.n_landmarks, n)
        # Pad at the front to a multiple of m so the landmarks are equal-length segment
        # means (zero tokens have zero q, k, v: the projection has no bias).
        pad = (-n) % m
        if pad:
            x = F.pad(x, (0, 0, pad, 0))
        q, k, v = self._heads(x)
        length = x.shape[0] // m
        q_land = q.reshape(self.n_heads, m, length, self.head_dim).mean(dim=2)
        k_land = k.reshape(self.n_heads, m, length, self.head_dim).mean(dim=2)
        kernel_1 = torch.softmax(q @ k_land.transpose(-1, -2), dim=-1)  # (h, n, m)
        kernel_2 = torch.softmax(q_land @ k_land.transpose(-1, -2), dim=-1)  # (h, m, m)
        kernel_3 = torch.softmax(q_land @ k.transpose(-1, -2), dim=-1)  # (h, m, n)
        out = (kernel_1 @ iterative_pinv(kernel_2, self.pinv_iterations)) @ (kernel_3 @ v)
        if self.residual is not None:
            out = out + self.residual(v.unsqueeze(0)).squeeze(0)
        out = out.permute(1, 0, 2).reshape(x.shape[0], -1)
        return self.to_out(out)[pad:]

    def exact_row(self, x: Tensor, index: int = 0) -> Tensor:
        """Exact softmax attention of token ``index`` over all tokens, mean over heads.

        Costs O(n): one query against every key.

        Parameters
        ----------
        x : Tensor
            (n, dim) the tokens this layer attends over (its input).
        index : int
            The querying token (0: the class token).

        Returns
        -------
        Tensor
            (n,) non-negative weights summing to one.
        """
        q, k, _ = self._heads(x)
        logits = (q[:, index : index + 1] @ k.transpose(-1, -2)).squeeze(1)  # (h, n)
        return torch.softmax(logits, dim=-1).mean(dim=0)


def landmarks_for(hidden_dim: int) -> int:
    """TransMIL's default number of landmarks: half the token size."""
    return max(1, math.ceil(hidden_dim / 2))
