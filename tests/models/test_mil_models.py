"""The contract every registered MIL model keeps: shapes, normalisation, tokens, gradients."""

from __future__ import annotations

import pytest
import torch
from slidescope.models.mil import MILModel, MILOutput, create_model, list_models, register_model
from slidescope.models.mil.nystrom import NystromAttention, iterative_pinv
from torch.nn import functional as F

pytestmark = pytest.mark.usefixtures("one_torch_thread")


IN_DIM = 24
HIDDEN = 16
N_CLASSES = 3
EXPECTED = {
    "mean_pool",
    "max_pool",
    "abmil",
    "abmil_gated",
    "transmil",
    "dsmil",
    "clam_sb",
    "instance_max",
    "concept_presence",
}


def small(name: str, n_classes: int = N_CLASSES, seed: int = 0) -> MILModel:
    torch.manual_seed(seed)
    kwargs = {"n_heads": 4} if name == "transmil" else {}
    model = create_model(name, IN_DIM, n_classes, hidden_dim=HIDDEN, **kwargs)
    return model.eval()


def test_every_model_is_registered():
    assert set(list_models()) >= EXPECTED
    assert list_models("abmil*") == ["abmil", "abmil_gated"]


def test_unknown_model_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown MIL model 'nope'.*abmil"):
        create_model("nope", 8, 2)


def test_a_name_cannot_be_registered_twice():
    with pytest.raises(ValueError, match="registered twice"):
        register_model("abmil")(lambda in_dim, n_classes: small("abmil"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("n", [1, 7, 300])
def test_output_shapes_and_normalisation(name, n):
    model = small(name)
    with torch.no_grad():
        out = model(torch.randn(n, IN_DIM) * 5 + 3)
    assert isinstance(out, MILOutput)
    assert out.logits.shape == (N_CLASSES,)
    assert out.attention.shape == (n,)
    assert out.instance_probs.shape == (n, N_CLASSES)
    assert out.bag_feature.shape == (model.bag_dim,)
    assert torch.all(out.attention >= 0)
    torch.testing.assert_close(out.attention.sum(), torch.tensor(1.0), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.instance_probs.sum(dim=1), torch.ones(n), atol=1e-5, rtol=0)
    assert torch.isfinite(out.logits).all()


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("n", [1, 20])
def test_global_tokens_join_the_pooling_but_not_the_attention(name, n):
    model = small(name)
    x = torch.randn(n, IN_DIM)
    tokens = torch.randn(4, HIDDEN) * 3
    with torch.no_grad():
        h = model.embed(x)
        plain = model.aggregate(h)
        joined = model.aggregate(h, tokens=tokens)
    assert joined.attention.shape == (n,)
    torch.testing.assert_close(joined.attention.sum(), torch.tensor(1.0), atol=1e-5, rtol=0)
    assert joined.instance_probs.shape == (n, N_CLASSES)
    # The tokens take part in pooling: the bag changes.
    assert not torch.allclose(plain.bag_feature, joined.bag_feature)
    with pytest.raises(ValueError, match="global tokens"):
        model.aggregate(h, tokens=torch.randn(2, HIDDEN + 1))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_empty_bag_and_wrong_dimension_are_refused(name):
    model = small(name)
    with pytest.raises(ValueError, match="at least one instance"):
        model(torch.zeros(0, IN_DIM))
    with pytest.raises(ValueError, match="at least one instance"):
        model.aggregate(torch.zeros(0, HIDDEN))
    with pytest.raises(ValueError, match=rf"\(N, {IN_DIM}\)"):
        model(torch.zeros(5, IN_DIM + 1))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_deterministic_for_a_seed(name):
    x = torch.randn(50, IN_DIM)
    first, second = small(name, seed=3), small(name, seed=3)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    with torch.no_grad():
        out1, out2 = first(x), second(x)
    torch.testing.assert_close(out1.logits, out2.logits, atol=0, rtol=0)
    torch.testing.assert_close(out1.attention, out2.attention, atol=0, rtol=0)
    other = small(name, seed=4)
    assert not torch.allclose(other(x).logits, out1.logits)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_gradients_reach_every_parameter(name):
    model = small(name).train()
    x = torch.randn(40, IN_DIM)
    h = model.embed(x)
    out = model.aggregate(h)
    loss = torch.nn.functional.cross_entropy(out.logits[None], torch.tensor([1]))
    if hasattr(model, "instance_loss"):
        # Every class's instance classifier is trained on bags of its class.
        for label in range(N_CLASSES):
            loss = loss + model.instance_loss(h, out.attention, label)
    # Attention and instance probabilities are differentiable too (AEM, MHIM scores).
    loss = loss - (out.attention * out.attention.clamp_min(1e-9).log()).sum() * 0.01
    loss.backward()
    for pname, param in model.named_parameters():
        assert param.grad is not None, f"{name}.{pname} gets no gradient"
        assert torch.isfinite(param.grad).all()
    assert any(p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_standardisation_is_part_of_the_weights(name):
    model = small(name)
    model.set_standardisation(torch.full((IN_DIM,), 2.0), torch.full((IN_DIM,), 4.0))
    state = model.state_dict()
    assert torch.equal(state["feature_mean"], torch.full((IN_DIM,), 2.0))
    assert torch.equal(state["feature_std"], torch.full((IN_DIM,), 4.0))
    x = torch.randn(9, IN_DIM)
    with torch.no_grad():
        torch.testing.assert_close(model.embed(x * 4 + 2), model.embed_hidden(x))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_large_bag_runs(name):
    model = small(name)
    with torch.no_grad():
        out = model(torch.randn(12_000, IN_DIM))
    assert out.attention.shape == (12_000,)
    assert torch.isfinite(out.attention).all()


def test_abmil_instance_probs_follow_the_formula():
    model = small("abmil_gated")
    x = torch.randn(30, IN_DIM)
    with torch.no_grad():
        h = model.embed(x)
        out = model.aggregate(h)
        expected = torch.softmax(model.classifier(out.attention[:, None] * h), dim=-1)
        torch.testing.assert_close(out.instance_probs, expected)
        # The bag feature is the attention-weighted sum.
        torch.testing.assert_close(out.bag_feature, out.attention @ h)


def test_dsmil_instance_contributions_add_up_to_the_bag_logits():
    model = small("dsmil")
    x = torch.randn(25, IN_DIM)
    with torch.no_grad():
        out = model(x)
    # softmax rows lose the additive constant: compare log-probabilities up to it.
    logp = out.instance_probs.log()
    centred = logp - logp.mean(dim=1, keepdim=True)
    assert centred.shape == (25, N_CLASSES)
    # Exact decomposition: sum_i (contribution_i - b) + b == bag logits.
    h = model.embed(x)
    q = model.query(h)
    critical = model.instance_classifier(h).argmax(dim=0)
    weights = torch.softmax(q @ q[critical].T / q.shape[1] ** 0.5, dim=0)
    kernel = model.classifier.weight
    contribution = torch.einsum("ckh,ik,ih->ic", kernel, weights, h)
    torch.testing.assert_close(contribution.sum(0) + model.classifier.bias, out.logits)
    torch.testing.assert_close(
        torch.softmax(contribution + model.classifier.bias, dim=-1), out.instance_probs
    )


def test_transmil_attention_is_the_exact_class_token_row():
    model = small("transmil")
    x = torch.randn(16, IN_DIM)  # a full 4 x 4 grid: no copies
    with torch.no_grad():
        h = model.embed(x)
        out = model.aggregate(h)
        seq = torch.cat([model.cls_token, h])
        seq = model.position(model.layer1(seq), 4)
        attn = model.layer2.attention
        q, k, _ = attn._heads(model.layer2.norm(seq))
    # One query (the class token) against every key, softmax per head, mean over heads.
    full = torch.softmax(torch.einsum("hd,hnd->hn", q[:, 0], k), dim=-1).mean(0)[1:]
    torch.testing.assert_close(out.attention, full / full.sum())


def test_nystrom_matches_softmax_attention_with_enough_landmarks():
    torch.manual_seed(0)
    layer = NystromAttention(16, n_heads=2, n_landmarks=64, residual_kernel=0, dropout=0).eval()
    x = torch.randn(40, 16)
    q, k, v = layer._heads(x)
    exact = (torch.softmax(q @ k.transpose(-1, -2), dim=-1) @ v).permute(1, 0, 2).reshape(40, 16)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), layer.to_out(exact), atol=2e-2, rtol=0)
    m = torch.softmax(torch.randn(2, 8, 8), dim=-1)
    torch.testing.assert_close(iterative_pinv(m, 20), torch.linalg.pinv(m), atol=1e-3, rtol=0)


def test_clam_instance_loss():
    model = small("clam_sb", n_classes=2).train()
    h = model.embed(torch.randn(30, IN_DIM))
    out = model.aggregate(h)
    loss = model.instance_loss(h, out.attention, torch.tensor(1))
    assert loss.ndim == 0
    assert loss > 0
    loss.backward()
    assert model.instance_classifiers[1].weight.grad.abs().sum() > 0
    # Without subtyping, the other class's classifier is not trained on this bag.
    assert model.instance_classifiers[0].weight.grad is None
    single = model.embed(torch.randn(1, IN_DIM))
    assert model.instance_loss(single, torch.ones(1), 0).item() == 0.0


def test_reference_configurations_match_the_reference_code() -> None:
    from slidescope.models.mil.reference import REFERENCE_KWARGS

    abmil = create_model("abmil", 1024, 2, **REFERENCE_KWARGS["abmil"])
    value, score = abmil.attention.value, abmil.attention.score
    assert value[0].out_features == 128
    assert value[0].bias is None
    assert score.bias is None
    assert isinstance(value[1], torch.nn.ReLU)
    assert abmil.attention.dropout.p == 0.0
    assert float(abmil.classifier.bias.detach().abs().sum()) == 0.0  # xavier init, zero bias
    transmil = create_model("transmil", 1024, 2, **REFERENCE_KWARGS["transmil"])
    assert transmil.hidden_dim == 512
    assert transmil.layer1.attention.n_landmarks == 256
    assert transmil.attention_layer == 0
    dsmil = create_model("dsmil", 1024, 2, **REFERENCE_KWARGS["dsmil"])
    out = dsmil(torch.randn(20, 1024))
    h = dsmil.embed(torch.randn(3, 1024))
    assert out.logits.shape == (2,)
    assert dsmil.fusion == "probabilities"
    assert (dsmil.bag_loss_weight, dsmil.instance_loss_weight) == (0.5, 0.5)
    assert not isinstance(dsmil.value, torch.nn.Identity)
    assert h.shape == (3, 512)


def _dsmil_streams(model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The bag stream's logits and the max-pooled instance logits, recomputed."""
    h = model.embed(x)
    critical = model.instance_classifier(h).argmax(dim=0)
    q = model.query(h)
    weights = torch.softmax(q @ q[critical].T / q.shape[1] ** 0.5, dim=0)
    bag = model.classifier((weights.T @ model.value(h)).unsqueeze(0)).reshape(-1)
    return bag, model.instance_classifier(h).max(dim=0).values


def test_dsmil_fusions_train_and_predict_as_the_reference() -> None:
    """ICCV (``v1:main.py:529-531,647-649``): loss ``0.5 CE(bag) + 0.5 CE(max)``,
    prediction ``0.5 softmax(bag) + 0.5 softmax(max)``. Journal
    (``m:engines/common_mil.py:26-28,66-67``): ``CE(0.5 (bag + max))`` for both."""
    from slidescope.models.mil.reference import REFERENCE_KWARGS
    from slidescope.models.training.steps import BagTarget, LossSettings, plain_step

    torch.manual_seed(0)
    x = torch.randn(30, 16)
    label = torch.tensor([1])
    v1 = create_model("dsmil", 16, 2, **{**REFERENCE_KWARGS["dsmil"], "hidden_dim": 8}).eval()
    bag, max_logits = _dsmil_streams(v1, x)
    probs = 0.5 * torch.softmax(bag, 0) + 0.5 * torch.softmax(max_logits, 0)
    assert torch.allclose(torch.softmax(v1(x).logits, 0), probs, atol=1e-6)
    loss, _ = plain_step(v1, x, BagTarget(1), LossSettings())
    expected = 0.5 * F.cross_entropy(bag[None], label) + 0.5 * F.cross_entropy(
        max_logits[None], label
    )
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)

    journal = create_model(
        "dsmil", 16, 2, hidden_dim=8, passing_v=True, fusion="logits", instance_loss_weight=0.0
    ).eval()
    bag, max_logits = _dsmil_streams(journal, x)
    fused = 0.5 * (bag + max_logits)
    assert torch.allclose(journal(x).logits, fused, atol=1e-6)
    loss, _ = plain_step(journal, x, BagTarget(1), LossSettings())
    assert loss.item() == pytest.approx(F.cross_entropy(fused[None], label).item(), rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden_dim": 0}, "hidden_dim must be a whole number from 1 to 65,536"),
        ({"hidden_dim": 10**7}, "65,536"),
        ({"hidden_dim": 1e7}, "65,536"),
        ({"hiden_dim": 8}, "its arguments are: hidden_dim"),
        ({"attention_act": "swish"}, "attention_act must be one of"),
    ],
)
def test_model_arguments_are_checked_before_building(kwargs, match) -> None:
    from slidescope.models.mil.base import ModelSettingError

    with pytest.raises(ModelSettingError, match=match):
        create_model("abmil", 16, 2, **kwargs)
    with pytest.raises(ModelSettingError, match="known MIL models: abmil"):
        create_model("resnet", 16, 2)
