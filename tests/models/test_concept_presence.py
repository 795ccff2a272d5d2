"""concept_presence: the two invariances of the MIL assumption, as properties.

On random bags, with untrained and with trained weights: adding any instance never lowers
the bag's positive score, and repeating instances never changes it. Then the outputs that
the rest of the program reads (attention as evidence, instance probabilities, tokens).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from slidescope.models.mil import STANDARD_MIL_MODELS, create_model
from slidescope.models.mil.concept_presence import ConceptPresenceMIL

pytestmark = pytest.mark.usefixtures("one_torch_thread")

IN_DIM = 6


def _model(n_classes: int, seed: int, trained: bool) -> ConceptPresenceMIL:
    torch.manual_seed(seed)
    model = create_model(
        "concept_presence", IN_DIM, n_classes, hidden_dim=12, n_concepts=4, n_terms=3
    )
    if trained:
        # weights moved far from their start: bags labelled by "A and B" along two axes
        optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
        generator = torch.Generator().manual_seed(seed)
        for _ in range(60):
            bag = torch.randn(8, IN_DIM, generator=generator)
            label = int(bag[:, 0].max() > 1.0 and bag[:, 1].max() > 1.0) % n_classes
            loss = torch.nn.functional.cross_entropy(
                model(bag).logits[None], torch.tensor([label])
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    return model.eval()


MODELS = {
    (n, seed, trained): _model(n, seed, trained)
    for n in (2, 3)
    for seed in (0, 1)
    for trained in (False, True)
}


def _positive_score(model: ConceptPresenceMIL, bag: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = model(bag).logits
    return torch.logsumexp(logits[1:], 0) - logits[0]


bags = st.integers(min_value=1, max_value=12).flatmap(
    lambda n: st.lists(
        st.lists(st.floats(-6, 6, allow_nan=False, width=32), min_size=IN_DIM, max_size=IN_DIM),
        min_size=n,
        max_size=n,
    )
)
which = st.sampled_from(sorted(MODELS))


@settings(max_examples=60, deadline=None)
@given(bag=bags, extra=bags, key=which)
def test_adding_instances_never_lowers_the_score(bag, extra, key) -> None:
    model = MODELS[key]
    x, more = torch.tensor(bag), torch.tensor(extra)
    before = _positive_score(model, x)
    after = _positive_score(model, torch.cat([x, more]))
    assert after >= before - 1e-5
    # and each non-reference class logit on its own
    with torch.no_grad():
        assert (model(torch.cat([x, more])).logits >= model(x).logits - 1e-5).all()


@settings(max_examples=60, deadline=None)
@given(bag=bags, repeats=st.lists(st.integers(0, 40), min_size=1, max_size=12), key=which)
def test_repeating_instances_never_changes_the_score(bag, repeats, key) -> None:
    model = MODELS[key]
    x = torch.tensor(bag)
    counts = torch.tensor([1 + repeats[i % len(repeats)] for i in range(len(x))])
    repeated = x.repeat_interleave(counts, dim=0)[torch.randperm(int(counts.sum()))]
    with torch.no_grad():
        torch.testing.assert_close(model(repeated).logits, model(x).logits, atol=1e-5, rtol=0)


def test_it_is_listed_as_keeping_the_assumption() -> None:
    assert "concept_presence" in STANDARD_MIL_MODELS


def test_it_can_require_two_concepts_together() -> None:
    # hand-set weights: concept 0 = feature 0 high, concept 1 = feature 1 high, one
    # product term p0 * p1: only a bag with both is positive (threshold MIL)
    model = create_model("concept_presence", 2, 2, hidden_dim=2, n_concepts=2, n_terms=1)
    with torch.no_grad():
        model.embedding[0].weight.copy_(torch.eye(2))
        model.embedding[0].bias.zero_()
        model.concepts.weight.copy_(torch.eye(2) * 20)
        model.concepts.bias.fill_(-10.0)
        model.term_weight_raw.fill_(5.0)  # exponents ~5: p0^5 * p1^5
        model.class_weight_raw.fill_(3.0)
        model.class_bias.fill_(-1.5)
    model.eval()
    both = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]])
    only_a = torch.tensor([[1.0, 0.0]] * 40 + [[0.0, 0.0]])
    only_b = torch.tensor([[0.0, 1.0], [0.0, 0.0]])
    assert _positive_score(model, both) > 1.0
    assert _positive_score(model, only_a) < -1.0
    assert _positive_score(model, only_b) < -1.0


def test_attention_is_the_evidence_of_each_instance() -> None:
    model = _model(2, 0, trained=True)
    bag = torch.randn(20, IN_DIM, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        out = model(bag)
        h = model.embed(bag)
        concept = model.concept_scores(h)
        logits, terms = model.combine(concept.max(0).values)
        sensitivity = model._sensitivity(logits, terms, concept.max(0).values)
    assert (sensitivity >= 0).all()
    assert (out.attention >= 0).all()
    torch.testing.assert_close(out.attention.sum(), torch.tensor(1.0))
    # a_i is proportional to sum_k g_k c_ik: the display adds nothing of its own
    evidence = concept @ sensitivity
    torch.testing.assert_close(out.attention, evidence / evidence.sum())
    # and it changes no logit: the bag's logits come from the presences alone
    torch.testing.assert_close(out.logits, logits)
    assert out.instance_probs.shape == (20, 2)


@pytest.mark.parametrize(("name", "value"), [("n_concepts", 0), ("n_terms", 10**6)])
def test_absurd_sizes_are_refused(name, value) -> None:
    with pytest.raises(ValueError, match=name):
        create_model("concept_presence", IN_DIM, 2, **{name: value})
