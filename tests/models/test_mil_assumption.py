"""The standard MIL assumption: which models keep it, structurally and after training.

Algorithmic unit tests after Raff & Holt (NeurIPS 2023), see ``mil_assumption_bags.py``:
a model that respects the assumption must rank the test bags right even though the
training bags also carried a spurious, assumption-breaking signal.
"""

from __future__ import annotations

from pathlib import Path

import mil_assumption_bags
import numpy as np
import pytest
import torch
from slidescope.models.checkpoints import load_checkpoint
from slidescope.models.jobs import run_job
from slidescope.models.mil import STANDARD_MIL_MODELS, create_model, list_models
from slidescope.models.training.config import TrainingConfig
from slidescope.models.training.metrics import binary_auc
from slidescope.models.training.trainer import train

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


def _train_and_score(tmp_path: Path, scenario: str, model: str) -> tuple[float, float]:
    bags = mil_assumption_bags
    labels = bags.write_training_set(tmp_path / scenario, scenario, seed=0)
    kwargs = {"hidden_dim": 16, **({"n_heads": 4} if model == "transmil" else {})}
    config = TrainingConfig(
        features=tmp_path / scenario,
        labels=labels,
        out=tmp_path / f"{scenario}_{model}.safetensors",
        model=model,
        model_kwargs=kwargs,
        epochs=30,
        patience=0,
        lr=5e-3,
        device="cpu",
    )
    result = run_job(train(config))
    trained = load_checkpoint(result.path).model.eval()

    def auc(test: bool, seed: int) -> float:
        x, y = bags.scenario_bags(scenario, 60, test=test, seed=seed)
        with torch.no_grad():
            p = [
                float(torch.softmax(trained(torch.from_numpy(b).float()).logits, 0)[1]) for b in x
            ]
        return binary_auc(y == 1, np.array(p))

    return auc(False, 98), auc(True, 99)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["presence", "frequency", "multi_concept"])
def test_instance_max_passes_the_algorithmic_unit_tests(tmp_path, scenario) -> None:
    seen, unseen = _train_and_score(tmp_path, scenario, "instance_max")
    assert seen >= 0.75, f"{scenario}: did not learn the training distribution ({seen:.2f})"
    assert unseen >= 0.8, f"{scenario}: relied on a signal the MIL assumption forbids"


@pytest.mark.slow
def test_frequency_scenario_catches_an_attention_model(tmp_path) -> None:
    # The test has teeth: ABMIL learns the training bags, then fails once the
    # distractor frequencies swap (it counts distractors instead of finding witnesses).
    seen, unseen = _train_and_score(tmp_path, "frequency", "abmil")
    assert seen >= 0.9
    assert unseen < 0.5
