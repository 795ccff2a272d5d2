"""The sandbox child of :mod:`slide_mutants`: reads the slides named on stdin, one per line.

Run as ``python fuzz_child.py READER MEMORY_BYTES``. The address space is capped first;
then for each path it answers one JSON line ``{"kind", "detail", "stderr"}``, where ``kind``
is ``slide-error``, ``opened``, ``raw-exception`` or ``memory``, and ``stderr`` is what
reading that slide wrote to the terminal (file descriptor 2).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import traceback


def _cap_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _read_with_slidescope(path: str) -> None:
    from slidescope.app.slides import open_slide

    with open_slide(path) as slide:
        slide.thumbnail(512)
        w, h = slide.dimensions
        for fx, fy in ((0.0, 0.0), (0.5, 0.5), (0.95, 0.9)):
            slide.read_region((int(w * fx), int(h * fy)), 0, (256, 256))
        last = slide.levels[-1]
        last[: min(64, last.shape[0]), : min(64, last.shape[1])]


def _read_with_openslide(path: str) -> None:
    import openslide

    with openslide.OpenSlide(path) as slide:
        slide.get_thumbnail((512, 512))
        w, h = slide.dimensions
        for fx, fy in ((0.0, 0.0), (0.5, 0.5), (0.95, 0.9)):
            slide.read_region((int(w * fx), int(h * fy)), 0, (256, 256))
        slide.read_region((0, 0), slide.level_count - 1, (64, 64))


def _run_cli(path: str) -> None:
    from slidescope.app.cli import main

    code = main(["info", path])
    if code not in (0, 2):
        raise RuntimeError(f"slidescope info exited {code}")


def _classify(error: BaseException, reader: str) -> tuple[str, str]:
    chain: list[BaseException] = []
    cause: BaseException | None = error
    while cause is not None and cause not in chain:
        chain.append(cause)
        cause = cause.__cause__ or cause.__context__
    detail = f"{type(error).__name__}: {error}"[:300]
    if any(isinstance(e, MemoryError) for e in chain):
        return "memory", detail
    if reader == "openslide":
        import openslide

        # OpenSlide's own clean refusals are its "slide errors"
        if isinstance(error, openslide.OpenSlideError):
            return "slide-error", detail
        return "raw-exception", detail
    from slidescope.app.slides import SlideError

    if isinstance(error, SlideError):
        return "slide-error", detail
    where = traceback.extract_tb(error.__traceback__)[-1]
    return "raw-exception", f"{detail} at {where.filename}:{where.lineno}"


def main() -> None:
    reader, limit = sys.argv[1], int(sys.argv[2])
    read = {
        "slidescope": _read_with_slidescope,
        "openslide": _read_with_openslide,
        "cli": _run_cli,
    }
    _cap_memory(limit)
    # import once, before any slide, so that a module's import is not charged to a mutant
    if reader == "openslide":
        import openslide  # noqa: F401
    else:
        import slidescope.app.cli
        import slidescope.app.slides.tiff_slide  # noqa: F401
    terminal = os.dup(2)
    # answers go to the parent on the original stdout; what the reader prints goes nowhere
    answers = os.fdopen(os.dup(1), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    for line in sys.stdin:
        path = line.strip()
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                read[reader](path)
                kind, detail = "opened", ""
            except Exception as error:
                kind, detail = _classify(error, reader)
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os.dup2(terminal, 2)
            captured.seek(0)
            stderr = captured.read().decode("utf-8", "replace")
        if reader == "cli":
            # the CLI's own one-line error is what the user should see: keep it apart
            lines = [t for t in stderr.splitlines() if t.strip()]
            detail = detail or (lines[0] if lines else "")
        answer = {"kind": kind, "detail": detail, "stderr": stderr[-2000:]}
        answers.write(json.dumps(answer) + "\n")
        answers.flush()


if __name__ == "__main__":
    main()
