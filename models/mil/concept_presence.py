"""Concept presence: a MIL model that keeps the MIL assumption and can still say "A and B".

Raff & Holt (NeurIPS 2023) give three algorithmic unit tests that a model keeping the MIL
assumption must pass: a *poison* instance that only negatives carry in training must not
become negative evidence; a bag can need *several concepts together* (threshold MIL:
positive only with concept A and concept B); and how *often* a concept repeats must not
matter (false frequency). Attention models fail the first and third, ``instance_max``
(mi-Net) the second and third. This model passes all three by construction:

1. **Concept scores** ``c_ik = sigmoid(w_k . f(x_i) + b_k)`` in [0, 1]: how much instance i
   shows learnt concept k (K concepts, ``n_concepts``). Per instance, nothing else.
2. **Presence** ``p_k = max_i c_ik``: whether the bag holds concept k anywhere.
   *Guarantees*: adding an instance can only raise or keep each ``p_k`` (a maximum over a
   larger set), and repeating an instance changes no ``p_k`` (presence, not frequency).
3. **Monotone combiner**: terms ``u_j = prod_k p_k ** e_jk`` (weighted geometric
   products) then ``l_c = U_c . u + d_c``, with exponents ``e = softplus(V_raw) >= 0``,
   weights ``U = softplus(U_raw) >= 0`` and a free bias ``d_c``.
   *Guarantees*: every class logit ``l_c`` (c >= 1) is non-decreasing in every ``p_k``, so
   with (2) the bag's evidence never decreases when instances are added and never changes
   when they repeat; no instance can be learnt as negative evidence (a poison instance
   can only add, never subtract). A product is high only when every concept it weighs is
   present, so one term can require A *and* B (``u = p_A p_B``), which a single max
   cannot; several terms give "A, or B and C".
4. **Reference class**: class 0 (the "nothing found" class, e.g. ``normal``) has the
   constant logit 0, as in ``instance_max``; with more classes, name it to sort first.

For display only (changes no logit): ``attention`` is each instance's share of the
evidence, ``a_i ~ sum_k g_k c_ik``, with ``g_k >= 0`` the sensitivity of the positive
score to concept k (the instances that show the concepts the decision rests on light up);
``instance_probs`` are the classes that the instance alone, as a bag of one, would get;
``bag_feature`` is the evidence-weighted mean of the hidden instances (for MHIM's
consistency loss). MHIM's global tokens join the maximum like instances (and the
bag feature), not the attention.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from slidescope.models.mil.abmil import instance_embedding
from slidescope.models.mil.base import (
    MILModel,
    MILOutput,
    check_size,
    join_tokens,
    real_attention,
    require_instances,
)
from slidescope.models.mil.registry import register_model
from torch import Tensor, nn

_TINY = 1e-6  # presences are clamped here before their logarithm


class ConceptPresenceMIL(MILModel):
    """Max-pooled concept presence into a non-negative (monotone) combiner.

    Parameters
    ----------
    in_dim : int
        Feature dimension D.
    n_classes : int
        Number of classes C (class 0 is the reference, "nothing found" class).
    hidden_dim : int
        Size H of the hidden instances.
    n_concepts : int
        Number K of learnt concepts (presence detectors).
    n_terms : int
        Number J of combiner terms (each a soft threshold over concept presences).
    dropout : float
        Dropout after the instance embedding; none by default: each concept's presence
        rests on one instance, and dropout there blurs the thresholds the combiner needs
        (on the false-frequency test, 0.25 costs about 0.1 of test AUC).
    act : str
        ``"relu"`` or ``"gelu"``.
    """

    def __init__(
        self,
        in_dim: int,
        n_classes: int,
        hidden_dim: int = 512,
        n_concepts: int = 8,
        n_terms: int = 8,
        dropout: float = 0.0,
        act: str = "relu",
    ) -> None:
        super().__init__(in_dim, n_classes, hidden_dim)
        if n_classes < 2:
            raise ValueError(f"concept_presence needs at least two classes, got {n_classes}")
        check_size("n_concepts", n_concepts)
        check_size("n_terms", n_terms)
        self.n_concepts, self.n_terms = int(n_concepts), int(n_terms)
        self.embedding = instance_embedding(in_dim, hidden_dim, dropout, act)
        self.concepts = nn.Linear(hidden_dim, self.n_concepts)
        # raw weights of the combiner; softplus keeps the used ones >= 0 (monotonicity)
        self.term_weight_raw = nn.Parameter(torch.empty(self.n_terms, self.n_concepts))
        self.class_weight_raw = nn.Parameter(torch.empty(n_classes - 1, self.n_terms))
        self.class_bias = nn.Parameter(torch.empty(n_classes - 1))
        self.reset_combiner()

    def reset_combiner(self) -> None:
        """Start with weak exponents (every term near 1) and concepts that start absent."""
        with torch.no_grad():
            self.term_weight_raw.normal_(-2.0, 0.5)  # exponents softplus ~ 0.13
            self.class_weight_raw.normal_(0.0, 0.5)
            self.class_bias.copy_(-0.8 * F.softplus(self.class_weight_raw).sum(1))
            self.concepts.bias.fill_(-2.0)

    def embed_hidden(self, x: Tensor) -> Tensor:
        return self.embedding(x)

    def concept_scores(self, h: Tensor) -> Tensor:
        """(N, K) per-instance concept scores in [0, 1]."""
        return torch.sigmoid(self.concepts(h))

    def combine(self, presence: Tensor) -> tuple[Tensor, Tensor]:
        """(..., K) presences -> (..., C) logits ``[0, l_1, ...]`` and (..., J) terms.

        Term j is the weighted geometric product ``prod_k p_k ** e_jk`` with exponents
        ``e = softplus(V_raw) >= 0``: non-decreasing in every presence, near 1 only when
        every concept it weighs is present (a soft AND; one concept alone: a soft OR
        across terms).
        """
        log_presence = torch.log(presence.clamp_min(_TINY))
        terms = torch.exp(log_presence @ F.softplus(self.term_weight_raw).T)
        scores = terms @ F.softplus(self.class_weight_raw).T + self.class_bias
        return torch.cat([scores.new_zeros(*scores.shape[:-1], 1), scores], dim=-1), terms

    def aggregate(self, h: Tensor, tokens: Tensor | None = None) -> MILOutput:
        require_instances(h, self.arch or "concept_presence")
        n = h.shape[0]
        everything = join_tokens(h, tokens)
        concept = self.concept_scores(everything)
        presence = concept.max(dim=0).values
        logits, terms = self.combine(presence)
        evidence = concept @ self._sensitivity(logits, terms, presence)  # (N + k,) >= 0
        total = evidence.sum()
        # no evidence at all (every sensitivity 0): uniform, without a host sync
        weights = torch.where(
            total > 0,
            evidence / total.clamp_min(torch.finfo(evidence.dtype).tiny),
            torch.full_like(evidence, 1.0 / evidence.shape[0]),
        )
        instance_logits, _ = self.combine(concept[:n])
        return MILOutput(
            logits=logits,
            attention=real_attention(weights[:n], tokens),
            bag_feature=weights @ everything,
            instance_probs=torch.softmax(instance_logits, dim=-1),
        )

    def _sensitivity(self, logits: Tensor, terms: Tensor, presence: Tensor) -> Tensor:
        """(K,) d(positive score)/d(presence), >= 0: how much each concept counts now.

        The positive score is ``logsumexp`` of the non-reference logits; its derivative
        through the product terms is written out so that it also runs without autograd.
        """
        class_share = torch.softmax(logits[1:], dim=0)  # (C-1,)
        d_terms = (class_share @ F.softplus(self.class_weight_raw)) * terms  # (J,)
        return (d_terms @ F.softplus(self.term_weight_raw)) / presence.clamp_min(_TINY)


@register_model("concept_presence")
def concept_presence(in_dim: int, n_classes: int, **kwargs: object) -> ConceptPresenceMIL:
    """Concept presence (max) into a monotone combiner: keeps the MIL assumption, can AND."""
    return ConceptPresenceMIL(in_dim, n_classes, **kwargs)  # type: ignore[arg-type]
