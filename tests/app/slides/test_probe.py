"""``probe_slide``: a slide tried in a sandboxed child; crashes and hangs become SlideErrors."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from slidescope.app.slides import probe
from slidescope.app.slides.errors import (
    CorruptSlideError,
    DecoderCrashedError,
    SlideError,
    UnsupportedSlideError,
)


def test_a_good_slide_passes_and_the_cost_is_measured(aperio_svs: Path) -> None:
    start = time.perf_counter()
    probe.probe_slide(aperio_svs, timeout_s=120)
    cost = time.perf_counter() - start
    print(f"\nprobe_slide on the Aperio sample: {cost:.2f} s")
    assert cost < 120


def test_a_slide_error_in_the_child_is_raised_again_here(tmp_path: Path) -> None:
    path = tmp_path / "notes.svs"
    path.write_text("not a slide")
    with pytest.raises(UnsupportedSlideError) as caught:
        probe.probe_slide(path, timeout_s=120)
    assert caught.value.path == path
    assert "not a slide" in caught.value.reason


def test_a_truncated_slide_is_refused(tmp_path: Path, generic_tiff: Path) -> None:
    path = tmp_path / "cut.tiff"
    path.write_bytes(generic_tiff.read_bytes()[:100])
    with pytest.raises(CorruptSlideError):
        probe.probe_slide(path, timeout_s=120)


def test_a_crash_becomes_decoder_crashed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # the child aborts as OpenSlide does on a damaged file (SIGABRT)
    abort = [sys.executable, "-c", "import os; os.abort()"]
    monkeypatch.setattr(probe, "_command", lambda path, limit: abort)
    with pytest.raises(DecoderCrashedError, match=r"the decoder crashed \(signal 6\)") as caught:
        probe.probe_slide(tmp_path / "slide.mrxs")
    assert isinstance(caught.value, SlideError)
    assert caught.value.path == tmp_path / "slide.mrxs"


def test_a_hang_is_stopped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    hang = [sys.executable, "-c", "import threading; threading.Event().wait()"]
    monkeypatch.setattr(probe, "_command", lambda path, limit: hang)
    with pytest.raises(DecoderCrashedError, match="longer than 2 s"):
        probe.probe_slide(tmp_path / "slide.vms", timeout_s=2)


def test_a_memory_blow_up_is_contained(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # under the cap, asking for 8 GiB fails in the child, not here
    greedy = [
        sys.executable,
        "-c",
        "import resource, sys; resource.setrlimit(resource.RLIMIT_AS, (2**30, 2**30)); "
        "b = bytearray(8 * 2**30)",
    ]
    monkeypatch.setattr(probe, "_command", lambda path, limit: greedy)
    with pytest.raises(DecoderCrashedError, match="MemoryError"):
        probe.probe_slide(tmp_path / "slide.svs")
