"""The prepared GPU-machine run works before a GPU is lent: tiny sizes, on this machine.

``device_check.py`` is what a session with the lent GPU runs in one call (its CUDA paths
have no other proof); here it runs with ``--smoke``, every step but the compiled one
(minutes of compiling on two cores; ``test_extract.py`` covers ``--compile``).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from device_check import STEPS, chosen_steps

SCRIPT = Path(__file__).with_name("device_check.py")
pytestmark = pytest.mark.slow


def test_every_step_passes_in_the_smoke_run(tmp_path) -> None:
    steps = [name for name, _ in STEPS if name != "extract_compiled"]
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke", "--out", str(tmp_path), "--only", *steps],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    assert list(report) == steps
    assert all(result["ok"] for result in report.values()), report
    assert report["extract_order"]["same_patches_same_order"]
    assert report["dask_gpu"]["gpu_workers_seen"]
    assert "step            ok" in run.stdout  # the table, printed last
    assert sorted(p.name for p in tmp_path.iterdir()) == ["device_check.json"]


def test_a_step_brings_what_it_needs() -> None:
    assert chosen_steps(["inference"]) == [
        "environment", "extract_speed", "training", "inference",
    ]  # fmt: skip
    assert chosen_steps(["dask_gpu"]) == ["environment", "extract_order", "dask_gpu"]
    assert chosen_steps(None) == [name for name, _ in STEPS]
    with pytest.raises(SystemExit, match="unknown step"):
        chosen_steps(["nope"])


def test_a_failed_check_keeps_the_figures_and_fails_the_run(tmp_path, monkeypatch) -> None:
    import device_check

    def failing(ctx: object) -> dict[str, object]:
        figures: dict[str, object] = {"patches_per_s": 10.0}
        device_check.expect(figures, 0.5 >= 0.9, "pipeline slower than the forward pass")
        return figures

    def crashing(ctx: object) -> dict[str, object]:
        raise RuntimeError("no GPU")

    steps = [("environment", lambda ctx: {}), ("slow", failing), ("broken", crashing)]
    monkeypatch.setattr(device_check, "STEPS", steps)
    assert device_check.main(["--out", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "device_check.json").read_text())
    assert report["environment"]["ok"]
    assert report["slow"]["ok"] is False
    assert report["slow"]["patches_per_s"] == 10.0
    assert report["slow"]["failed"] == ["pipeline slower than the forward pass"]
    assert report["broken"] == {"ok": False, "error": "RuntimeError: no GPU", "step_s": 0.0}
    assert "RuntimeError: no GPU" in (tmp_path / "tracebacks.txt").read_text()
