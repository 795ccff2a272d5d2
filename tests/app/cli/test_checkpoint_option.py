"""``--checkpoint demo_model``: the bundled model by its name, for a first try on a cohort."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from slidescope.app.cli import main
from slidescope.app.cli.options import BUNDLED_MODEL, checkpoint_path
from slidescope.resources import resource_path


def test_the_bundled_model_by_name_and_a_file_of_that_name_first(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert checkpoint_path(BUNDLED_MODEL) == resource_path("demo_model.safetensors")
    assert checkpoint_path("other.safetensors") == Path("other.safetensors")
    (tmp_path / BUNDLED_MODEL).write_bytes(b"")  # the user's own file is never shadowed
    assert checkpoint_path(BUNDLED_MODEL) == Path(BUNDLED_MODEL)


@pytest.mark.slow
def test_export_with_the_bundled_model_by_name(tmp_path, capsys) -> None:
    from slidescope.app.demo.generate import generate_demo_slide
    from slidescope.app.jobs import run_job

    slide = run_job(generate_demo_slide(tmp_path / "s.tiff", 4096, 4096, seed=11)).path
    out = tmp_path / "heat"
    args = ["export", str(slide), "--checkpoint", BUNDLED_MODEL, "--out", str(out)]
    assert main([*args, "--workers", "0", "--kinds", "attention"]) == 0
    done = json.loads((out / "s" / "s.done.json").read_text())
    assert done["status"] == "ok"
    assert Path(done["checkpoint"]) == resource_path("demo_model.safetensors")
    assert "demo_model.safetensors" in capsys.readouterr().err
