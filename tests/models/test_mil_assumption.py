"""The standard MIL assumption: which models keep it, structurally and after training.

Raff & Holt's algorithmic unit tests (NeurIPS 2023), see ``mil_assumption_bags.py``:
poison, threshold and false frequency. A model that keeps the assumption ranks the test
bags right although the training bags offered a shortcut it forbids. The table of every
registry model is ``tests/benchmarks/test_mil_assumption_table.py``.
"""

from __future__ import annotations

import mil_assumption_bags
import numpy as np
import pytest
import torch
from slidescope.models.mil import STANDARD_MIL_MODELS, create_model, list_models

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _small(name: str, n_classes: int = 2, seed: int = 0):
    torch.manual_seed(seed)
    kwargs = {"n_heads": 4} if name == "transmil" else {}
    return create_model(name, 8, n_classes, hidden_dim=16, **kwargs).eval()


def _positive_score(model, x: torch.Tensor) -> float:
    with torch.no_grad():
        logits = model(x).logits
    # Evidence for "not the reference class": what the standard assumption is about.
    return float(torch.logsumexp(logits[1:], 0) - logits[0])


def _can_be_lowered(model, trials: int = 30) -> bool:
    """Whether adding instances to a bag ever lowers its positive score."""
    generator = torch.Generator().manual_seed(0)
    for _ in range(trials):
        bag = torch.randn(6, 8, generator=generator) * 2
        extra = torch.randn(4, 8, generator=generator) * 2
        if _positive_score(model, torch.cat([bag, extra])) < _positive_score(model, bag) - 1e-5:
            return True
    return False


@pytest.mark.parametrize("name", list_models())
def test_documented_standard_mil_models_cannot_be_lowered_by_more_instances(name) -> None:
    # A model listed as keeping the standard assumption must never lose positive evidence
    # when instances are added (a positive instance cannot be "cancelled"); every other
    # model can, at random initialisation already, which is why it is not listed.
    lowered = any(_can_be_lowered(_small(name, n, seed)) for n in (2, 3) for seed in (0, 1))
    assert lowered == (name not in STANDARD_MIL_MODELS)


@pytest.mark.parametrize("name", sorted(STANDARD_MIL_MODELS))
def test_standard_mil_models_ignore_counts(name) -> None:
    model = _small(name)
    bag = torch.randn(5, 8, generator=torch.Generator().manual_seed(3))
    repeated = torch.cat([bag, bag[:2].repeat(10, 1)])
    assert _positive_score(model, repeated) == pytest.approx(_positive_score(model, bag), abs=1e-5)


#: a small, fast setting (the table in tests/benchmarks uses the same)
FAST = {"lr": 5e-3, "epochs": 30, "patience": 0}


@pytest.mark.slow
@pytest.mark.parametrize("scenario", mil_assumption_bags.SCENARIOS)
def test_concept_presence_passes_raff_and_holts_three_tests(tmp_path, scenario) -> None:
    seen, unseen = mil_assumption_bags.train_and_test(
        tmp_path, scenario, "concept_presence", {"hidden_dim": 32}, overrides=FAST
    )
    assert seen >= 0.75, f"{scenario}: did not learn the training distribution ({seen:.2f})"
    assert unseen >= 0.75, f"{scenario}: relied on a signal the MIL assumption forbids"


@pytest.mark.slow
def test_the_false_frequency_test_catches_instance_max(tmp_path) -> None:
    # The test has teeth: mi-Net cannot require A and B together, so on the test bags
    # the many copies of one concept outrank the pairs.
    _, unseen = mil_assumption_bags.train_and_test(
        tmp_path, "false_frequency", "instance_max", {"hidden_dim": 32}, overrides=FAST
    )
    assert unseen < 0.6


def test_the_bags_follow_the_papers_designs() -> None:
    rng = np.random.default_rng(0)

    def parts(scenario: str, positive: bool, test: bool, i: int = 0) -> dict[str, int]:
        return mil_assumption_bags.bag_parts(scenario, positive, test, i, rng)

    # poison: in negatives at training time, in positives (beside A) at test time
    assert parts("poison", True, False) == {"A": 1}
    assert parts("poison", False, False) == {"poison": 1}
    assert parts("poison", True, True) == {"A": 1, "poison": 1}
    assert parts("poison", False, True) == {}
    # threshold: positives need A and B; negatives hold A, B or neither
    for test in (False, True):
        assert parts("threshold", True, test) == {"A": 1, "B": 1}
        assert [parts("threshold", False, test, i) for i in range(3)] == [{"A": 1}, {"B": 1}, {}]
    # false frequency: one of A or B once in training, 35-44 copies at test time
    assert parts("false_frequency", True, True) == {"A": 1, "B": 1}
    assert parts("false_frequency", False, False, 1) == {"A": 1}
    copies = [max(parts("false_frequency", False, True, i).values()) for i in range(40)]
    assert min(copies) >= 35
    assert max(copies) <= 44
    bags, labels = mil_assumption_bags.scenario_bags("false_frequency", 10, test=True, seed=1)
    assert all(len(bag) >= 8 + 35 for bag, y in zip(bags, labels) if y == 0)
