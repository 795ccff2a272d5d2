"""Fuzzed slides, SlideScope against OpenSlide alone: the side-by-side table of outcomes.

The same mutants as ``tests/app/slides/test_fuzz.py`` (fixed seed; ``SLIDESCOPE_FUZZ_COUNT``,
default 300 here), each read in a sandboxed child (2 GiB address-space cap, 30 s timeout)
once through ``open_slide`` (open, thumbnail, regions, a level slice) and once through
``openslide.OpenSlide`` alone (open, ``get_thumbnail``, ``read_region``). Printed as a table:
process crashes, hangs, memory blow-ups, raw exceptions, clean errors, opened fine.

Run with ``make fuzz`` or
``python -m pytest tests/benchmarks/test_fuzz_table.py -o addopts="" -m benchmark -s``.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import openslide
import pytest
from slidescope.app.demo.generate import generate_demo_slide
from slidescope.app.jobs import run_job

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "app" / "slides"))
from slide_builders import HE_SIZE, write_generic_tiff
from slide_mutants import read_in_sandbox, table, write_mutants

pytestmark = pytest.mark.benchmark

SEED = 14
COUNT = int(os.environ.get("SLIDESCOPE_FUZZ_COUNT", "300"))


@pytest.mark.timeout(3600)
def test_fuzz_table_ours_against_openslide(tmp_path: Path, aperio_svs: Path) -> None:
    demo = tmp_path / "demo.tiff"
    run_job(generate_demo_slide(demo, width=1024, height=768, seed=1))
    with openslide.OpenSlide(aperio_svs) as slide:
        region = np.asarray(slide.read_region((400, 600), 0, HE_SIZE))[..., :3].copy()
    generic = write_generic_tiff(tmp_path / "generic.tiff", region)
    sources = {"demo": demo, "generic": generic, "aperio-svs": aperio_svs}
    mutants = write_mutants(sources, COUNT, SEED, tmp_path / "mutants")
    results = {
        "slidescope": read_in_sandbox(mutants, "slidescope"),
        "openslide": read_in_sandbox(mutants, "openslide"),
    }
    print(f"\n{COUNT} mutants (seed {SEED}):\n{table(results)}")
    for name, outcomes in results.items():
        for o in outcomes:
            if o.kind not in ("slide-error", "opened"):
                print(f"  {name}: {o.path.name}: {o.kind} {o.detail[:160]}")
    ours = Counter(o.kind for o in results["slidescope"])
    # ours never crashes, hangs, blows up or leaks a raw exception
    assert ours["slide-error"] + ours["opened"] == COUNT
    # and refuses at least what OpenSlide refuses or dies on
    theirs = Counter(o.kind for o in results["openslide"])
    assert ours["opened"] <= theirs["opened"] + theirs["memory"] + COUNT // 10
