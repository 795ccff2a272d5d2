"""What every MIL model is: one bag of N instance features in, :class:`MILOutput` out.

A model is split in two so that MHIM training can act between the halves:
``embed`` maps raw features (N, D) to hidden instances (N, H) — after the input
standardisation fitted on the training set — and ``aggregate`` pools hidden instances
into a bag. The global recycle network of MHIM appends its k global tokens to the kept
hidden instances through ``aggregate(h, tokens=...)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from slidescope.models.errors import ModelError
from torch import Tensor, nn


@dataclass
class MILOutput:
    """The result of one bag.

    Attributes
    ----------
    logits : Tensor
        (C,) class logits (for survival: C hazard logits).
    attention : Tensor
        (N,) per-instance attention over the N real instances (softmax-normalised for
        attention models; for pooling baselines, their per-instance contribution score).
        Appended global tokens are not included.
    bag_feature : Tensor
        (H,) the pooled bag representation that the classifier reads (its size is
        ``model.bag_dim``: H for every model except DSMIL, whose classifier reads one
        row per class, C * H).
    instance_probs : Tensor
        (N, C) class-aware instance probability: ``softmax_c(W_cls · a_i h_i)``, the
        classifier applied to each attention-weighted instance.
    bag_logits : Tensor or None
        (C,) the logits the supervised loss trains, where they are not ``logits``: a
        model whose prediction fuses two streams (DSMIL's probability fusion) trains each
        stream on its own. None: the loss reads ``logits``.
    """

    logits: Tensor
    attention: Tensor
    bag_feature: Tensor
    instance_probs: Tensor
    bag_logits: Tensor | None = None


class MILModel(nn.Module):
    """Base class of the registry's models.

    Subclasses implement :meth:`embed_hidden` and :meth:`aggregate`; the base class
    applies the input standardisation and records the architecture for checkpoints.
    """

    #: registry name and keyword arguments, set by ``create_model``
    arch: str = ""
    arch_kwargs: dict[str, Any]
    #: the training features' per-feature mean and standard deviation (buffers)
    feature_mean: Tensor
    feature_std: Tensor

    def __init__(self, in_dim: int, n_classes: int, hidden_dim: int) -> None:
        super().__init__()
        check_size("in_dim", in_dim)
        check_size("n_classes", n_classes)
        check_size("hidden_dim", hidden_dim)
        self.in_dim = in_dim
        self.n_classes = n_classes
        self.hidden_dim = hidden_dim
        #: size of ``MILOutput.bag_feature`` (H, except DSMIL: C * H)
        self.bag_dim = hidden_dim
        self.arch_kwargs = {}
        # Fitted on the training features and saved with the weights, so features of any
        # scale (ResNet, UNI, the builtin descriptor) reach the network standardised.
        self.register_buffer("feature_mean", torch.zeros(in_dim))
        self.register_buffer("feature_std", torch.ones(in_dim))

    def set_standardisation(self, mean: Tensor, std: Tensor) -> None:
        """Store the per-feature mean and standard deviation of the training set."""
        self.feature_mean.copy_(mean.to(self.feature_mean))
        self.feature_std.copy_(std.clamp_min(1e-6).to(self.feature_std))

    def standardise(self, x: Tensor) -> Tensor:
        return (x - self.feature_mean) / self.feature_std

    def embed(self, x: Tensor) -> Tensor:
        """(N, D) raw features -> (N, H) hidden instances."""
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise ValueError(
                f"{self.arch or type(self).__name__} expects a bag of shape (N, {self.in_dim}), "
                f"got {tuple(x.shape)}"
            )
        require_instances(x, self.arch or type(self).__name__)
        return self.embed_hidden(self.standardise(x))

    def embed_hidden(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def aggregate(self, h: Tensor, tokens: Tensor | None = None) -> MILOutput:
        """Pool (N, H) hidden instances, plus optional (k, H) extra tokens, into a bag."""
        raise NotImplementedError

    def forward(self, x: Tensor, tokens: Tensor | None = None) -> MILOutput:
        return self.aggregate(self.embed(x), tokens)


#: the largest layer size a MIL model accepts: 65,536 is already 64x the usual 1,024; a
#: larger hidden size is a typo (hidden_dim=1e7 would ask for terabytes of weights)
MAX_SIZE = 65_536


class ModelSettingError(ModelError, ValueError):
    """A MIL model's architecture setting is out of range or unknown."""


def check_size(name: str, value: object) -> None:
    """Refuse a layer size that is not an integer in [1, :data:`MAX_SIZE`].

    Raises
    ------
    ModelSettingError
        Naming the setting and the range.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIZE:
        raise ModelSettingError(
            f"{name} must be a whole number from 1 to {MAX_SIZE:,}, got {value!r}"
        )


def check_choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    """Refuse a setting that is not one of ``choices``."""
    if value not in choices:
        raise ModelSettingError(f"{name} must be one of {', '.join(choices)}; got {value!r}")


def require_instances(h: Tensor, who: str) -> None:
    """Refuse an empty bag: attention over zero instances has no meaning.

    Parameters
    ----------
    h : Tensor
        (N, D) instances of one bag.
    who : str
        The model's name, for the message.

    Raises
    ------
    ValueError
        If the bag has no instances (N = 0).
    """
    if h.ndim != 2 or h.shape[0] == 0:
        raise ValueError(
            f"{who}: a bag needs at least one instance, got shape {tuple(h.shape)}; "
            "skip slides without tissue patches before calling the model"
        )


def join_tokens(h: Tensor, tokens: Tensor | None) -> Tensor:
    """Append MHIM's (k, H) global tokens to the (N, H) instances (or return ``h``)."""
    if tokens is None or tokens.shape[0] == 0:
        return h
    if tokens.ndim != 2 or tokens.shape[1] != h.shape[1]:
        raise ValueError(
            f"global tokens must have shape (k, {h.shape[1]}), got {tuple(tokens.shape)}"
        )
    return torch.cat([h, tokens.to(h)], dim=0)


def instance_probabilities(classifier: nn.Module, weighted: Tensor) -> Tensor:
    """Class-aware instance probability ``softmax_c(W_cls · a_i h_i)``.

    Parameters
    ----------
    classifier : nn.Module
        The bag classifier, mapping (..., H) to (..., C).
    weighted : Tensor
        (N, H) attention-weighted instances ``a_i h_i``.

    Returns
    -------
    Tensor
        (N, C) rows that sum to one.
    """
    return torch.softmax(classifier(weighted), dim=-1)


def real_attention(pooled: Tensor, tokens: Tensor | None) -> Tensor:
    """The attention over the N real instances only, renormalised to sum to one.

    MHIM's global tokens share the softmax with the instances during training; they are
    not patches of the slide, so the reported attention leaves them out and is rescaled
    (without tokens this is the softmax itself).
    """
    if tokens is None or tokens.shape[0] == 0:
        return pooled
    return pooled / pooled.sum().clamp_min(torch.finfo(pooled.dtype).tiny)
