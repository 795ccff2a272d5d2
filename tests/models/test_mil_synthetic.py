"""Every model learns synthetic bags where positives hide a few planted instances.

A negative bag holds N (50-200) standard-normal instances; a positive bag is the same with
1-5 of them shifted along one fixed direction (the "tumour" instances). A short training
run must separate held-out bags (AUC), and the attention models must rank the planted
instances at the top of their attention.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from slidescope.models.mil import MILModel, create_model
from torch.nn import functional as F

pytestmark = pytest.mark.usefixtures("one_torch_thread")


DIM = 32
SHIFT = 5.0


@dataclass
class Bag:
    x: torch.Tensor
    label: int
    planted: np.ndarray


def make_bags(
    rng: np.random.Generator,
    n_bags: int,
    witnesses: tuple[int, int] = (1, 5),
    witness_share: float | None = None,
    sizes: tuple[int, int] = (50, 200),
) -> list[Bag]:
    """Half negative, half positive bags; positives get planted instances.

    ``witnesses`` is the (min, max) count of planted instances; ``witness_share`` instead
    plants that share of the bag.
    """
    direction = np.zeros(DIM, dtype=np.float32)
    direction[:4] = 0.5  # unit vector over four features
    bags = []
    for b in range(n_bags):
        label = b % 2
        n = int(rng.integers(sizes[0], sizes[1] + 1))
        x = rng.normal(size=(n, DIM)).astype(np.float32)
        planted = np.zeros(0, dtype=int)
        if label:
            if witness_share is None:
                k = int(rng.integers(witnesses[0], witnesses[1] + 1))
            else:
                k = max(1, round(witness_share * n))
            planted = rng.choice(n, size=k, replace=False)
            x[planted] += SHIFT * direction
        bags.append(Bag(torch.from_numpy(x), label, planted))
    return bags


def train(model: MILModel, bags: list[Bag], epochs: int, lr: float, seed: int = 0) -> None:
    everything = torch.cat([b.x for b in bags])
    model.set_standardisation(everything.mean(0), everything.std(0))
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    order = np.random.default_rng(seed)
    model.train()
    for _ in range(epochs):
        for i in order.permutation(len(bags)):
            bag = bags[i]
            h = model.embed(bag.x)
            out = model.aggregate(h)
            loss = F.cross_entropy(out.logits[None], torch.tensor([bag.label]))
            if hasattr(model, "instance_loss"):
                loss = loss + model.instance_loss_weight * model.instance_loss(
                    h, out.attention, bag.label
                )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()


def evaluate(model: MILModel, bags: list[Bag]) -> tuple[float, float, float]:
    """Bag AUC; mean normalised attention rank of planted instances (0 = as high as they
    can be); share of positive bags whose most attended instance is a planted one."""
    scores, ranks, hits = [], [], []
    with torch.no_grad():
        for bag in bags:
            out = model(bag.x)
            scores.append(torch.softmax(out.logits, 0)[1].item())
            if bag.label:
                order = torch.argsort(out.attention, descending=True).numpy()
                rank = np.empty_like(order)
                rank[order] = np.arange(len(order))
                # 0 for the best possible ranking of k planted instances: ranks 0..k-1.
                k = len(bag.planted)
                ranks.append((rank[bag.planted].mean() - (k - 1) / 2) / len(order))
                hits.append(rank[bag.planted].min() == 0)
    labels = [b.label for b in bags]
    return float(roc_auc_score(labels, scores)), float(np.mean(ranks)), float(np.mean(hits))


@pytest.fixture(scope="module")
def needle_bags() -> tuple[list[Bag], list[Bag]]:
    rng = np.random.default_rng(0)
    return make_bags(rng, 80), make_bags(rng, 40)


# epochs, learning rate
ATTENTION_MODELS = {
    "abmil": (12, 2e-3),
    "abmil_gated": (12, 2e-3),
    "clam_sb": (12, 2e-3),
    "dsmil": (12, 2e-3),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(ATTENTION_MODELS))
def test_attention_models_find_the_planted_instances(name, needle_bags):
    train_bags, test_bags = needle_bags
    epochs, lr = ATTENTION_MODELS[name]
    torch.manual_seed(0)
    model = create_model(name, DIM, 2, hidden_dim=32, dropout=0.0)
    train(model, train_bags, epochs, lr)
    auc, rank, hit = evaluate(model, test_bags)
    print(f"{name}: AUC {auc:.3f}, planted mean rank {rank:.3f}, top-1 planted {hit:.2f}")
    assert auc >= 0.9
    # The most attended instance is a planted one, and the planted instances sit in the
    # top few % of the attention on average (bag training needs only one of them to
    # decide, so a weak planted instance may rank lower).
    assert hit >= 0.9
    assert rank <= 0.08


def test_max_pooling_learns_the_planted_instances(needle_bags):
    train_bags, test_bags = needle_bags
    torch.manual_seed(0)
    model = create_model("max_pool", DIM, 2, hidden_dim=32, dropout=0.0)
    train(model, train_bags, 12, 2e-3)
    auc, rank, hit = evaluate(model, test_bags)
    print(f"max_pool: AUC {auc:.3f}, planted mean rank {rank:.3f}, top-1 planted {hit:.2f}")
    assert auc >= 0.85


def test_mean_pooling_is_diluted_but_above_chance(needle_bags):
    # One planted instance in up to 200 moves the mean a little: mean pooling is the
    # baseline that MIL attention improves on, but it still sees something.
    train_bags, test_bags = needle_bags
    torch.manual_seed(0)
    model = create_model("mean_pool", DIM, 2, hidden_dim=32, dropout=0.0)
    train(model, train_bags, 12, 2e-3)
    auc, _, _ = evaluate(model, test_bags)
    print(f"mean_pool: AUC {auc:.3f}")
    assert auc >= 0.6


@pytest.mark.slow
def test_transmil_learns_planted_regions():
    # TransMIL does not find a single needle among 200 instances from 40 positive bags in
    # a few epochs: its self-attention memorises the bags first (a known weakness of
    # transformer MIL on small data; see the report). It is held to a witness share of
    # 15 % — CAMELYON16-like tumour fractions — and its class-token attention, which is
    # not where all of its evidence flows (tokens mix in the first layer and PPEG), only
    # has to rank the planted instances well above chance.
    rng = np.random.default_rng(0)
    train_bags = make_bags(rng, 80, witness_share=0.15, sizes=(30, 80))
    test_bags = make_bags(rng, 40, witness_share=0.15, sizes=(30, 80))
    torch.manual_seed(0)
    model = create_model("transmil", DIM, 2, hidden_dim=32, n_heads=4, dropout=0.0)
    train(model, train_bags, 6, 5e-4)
    auc, rank, hit = evaluate(model, test_bags)
    print(f"transmil: AUC {auc:.3f}, planted mean rank {rank:.3f}, top-1 planted {hit:.2f}")
    assert auc >= 0.9
    assert rank <= 0.35
