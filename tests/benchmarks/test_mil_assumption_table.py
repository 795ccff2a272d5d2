"""Every registry model through Raff & Holt's three MIL-assumption tests: the table.

Run: ``python -m pytest tests/benchmarks/test_mil_assumption_table.py -o addopts="" -m
benchmark -s -p no:cacheprovider``. Each model is trained with the project's trainer on
the training bags of each test (``tests/models/mil_assumption_bags.py``: poison,
threshold, false frequency) with the same settings for all, and scored on the test bags.
Printed: model x (train AUC / test AUC) per test, and which models keep the assumption
by construction. A test is passed at test AUC >= 0.75 (chance is 0.5; a model that learnt
the forbidden shortcut lands well below it).
"""

from __future__ import annotations

import mil_assumption_bags as bags
import pytest
import torch
from slidescope.models.mil import STANDARD_MIL_MODELS, list_models

pytestmark = pytest.mark.benchmark

PASS = 0.75
#: one setting for every model: small bags learn in seconds at this rate
SETTINGS = {"lr": 5e-3, "epochs": 30, "patience": 0}
HIDDEN = 32


@pytest.mark.timeout(7200)  # about 1 to 2 minutes per model on two cores
def test_the_table(tmp_path) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows: dict[str, dict[str, tuple[float, float]]] = {}
    try:
        for name in list_models():
            kwargs = {"hidden_dim": HIDDEN, **({"n_heads": 4} if name == "transmil" else {})}
            rows[name] = {
                scenario: bags.train_and_test(
                    tmp_path / name, scenario, name, kwargs, overrides=SETTINGS
                )
                for scenario in bags.SCENARIOS
            }
    finally:
        torch.set_num_threads(threads)
    header = f"{'model':18s}" + "".join(f"{s:>24s}" for s in bags.SCENARIOS) + "  passes"
    lines = ["", "[mil-tests] train AUC / test AUC (pass: test AUC >= 0.75)", header]
    for name, results in rows.items():
        cells = "".join(f"{f'{tr:.2f} / {te:.2f}':>24s}" for tr, te in results.values())
        passes = sum(te >= PASS for _, te in results.values())
        keeps = " (keeps the MIL assumption)" if name in STANDARD_MIL_MODELS else ""
        lines.append(f"{name:18s}{cells}  {passes}/3{keeps}")
    print("\n".join(lines))
    assert all(test >= PASS for _, test in rows["concept_presence"].values())
