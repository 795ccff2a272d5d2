"""Try a slide in a child process first, where a crashing decoder cannot take us down.

Native decoders (OpenSlide above all, for the formats only it reads) can abort the whole
process on a damaged file: a demo slide with four IFD bytes changed made OpenSlide ask for
176 GB and die with SIGABRT. :func:`probe_slide` opens the slide and reads its thumbnail in a
child Python under an address-space cap (``RLIMIT_AS``) and a timeout, and turns whatever
happens there into the ``SlideError`` a caller can record: a crash becomes
:class:`DecoderCrashedError` ("the decoder crashed (signal 6)"), a hang or a memory blow-up
likewise, and a clean ``SlideError`` in the child is raised again here with its reason.

Its cost is a Python start and the imports of the slide readers (numpy, zarr, tifffile:
most of it), plus the open and the thumbnail themselves. Measured in
``tests/app/slides/test_probe.py`` on the shared two-core machine at load 12: 1.6 s for a
file refused at once, 6.1 s for the 2220 x 2967 Aperio sample. That is cheap per slide in a
batch, not per open in the window: there, TIFF-family files are already checked in process
(:mod:`~slidescope.app.slides.plausibility`) before OpenSlide sees them, and the probe is
worth its second only for formats only OpenSlide reads (MIRAX, VMS, DICOM, ...).

Run as ``python -m slidescope.app.slides.probe PATH MEMORY_LIMIT_BYTES``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from slidescope.app.slides import errors
from slidescope.app.slides.errors import DecoderCrashedError, SlideError, SlideTooLargeError

DEFAULT_TIMEOUT_S = 120.0
DEFAULT_MEMORY_LIMIT = 4 * 2**30
# The child's answer when it ends on a SlideError (its class and reason on stdout).
_SLIDE_ERROR_EXIT = 3
_MEMORY_EXIT = 4


def probe_slide(
    path: str | Path,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT,
) -> None:
    """Open ``path`` and read its thumbnail in a sandboxed child process.

    Parameters
    ----------
    path : str or Path
        The slide.
    timeout_s : float
        How long the child may take before it is killed and the slide is refused.
    memory_limit_bytes : int
        The child's address-space cap (``RLIMIT_AS``); a decoder that wants more fails
        there, not here.

    Raises
    ------
    DecoderCrashedError
        The child died on a signal ("the decoder crashed (signal 6)"), hung, or ended
        without an answer.
    SlideTooLargeError
        Reading the slide needs more memory than ``memory_limit_bytes``.
    SlideError
        Any other ``SlideError`` the child met, with its class and reason.
    """
    path = Path(path)
    command = _command(path, memory_limit_bytes)
    # Few malloc arenas: each thread's arena reserves 64 MiB of address space under the cap.
    env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=timeout_s, env=env, check=False
        )
    except subprocess.TimeoutExpired as error:
        raise DecoderCrashedError(
            path,
            f"reading it took longer than {timeout_s:.0f} s and was stopped; the decoder "
            "may hang on this file",
        ) from error
    code = done.returncode
    if code == 0:
        return
    stderr = done.stderr.decode("utf-8", "replace")
    if code < 0:
        hint = ""
        if "failed to allocate" in stderr or "MemoryError" in stderr:
            hint = f"; it asked for more than {memory_limit_bytes / 2**30:.0f} GiB of memory"
        raise DecoderCrashedError(path, f"the decoder crashed (signal {-code}){hint}")
    if code == _MEMORY_EXIT:
        raise SlideTooLargeError(
            path,
            f"reading it needs more than {memory_limit_bytes / 2**30:.0f} GiB of memory; "
            "the file claims sizes no real slide has",
        )
    if code == _SLIDE_ERROR_EXIT:
        try:
            answer = json.loads(done.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
            kind = getattr(errors, str(answer["error"]), SlideError)
            reason = str(answer["reason"])
        except (ValueError, KeyError, IndexError, TypeError):
            kind, reason = SlideError, "the slide cannot be read"
        if not (isinstance(kind, type) and issubclass(kind, SlideError)):
            kind = SlideError
        raise kind(path, reason)
    last = stderr.strip().splitlines()[-1:] or [f"exit status {code}"]
    raise DecoderCrashedError(path, f"the reader stopped unexpectedly ({last[0][:200]})")


def _command(path: Path, memory_limit: int) -> list[str]:
    return [sys.executable, "-m", "slidescope.app.slides.probe", str(path), str(memory_limit)]


def _child(path: str, memory_limit: int) -> int:
    """Open and read ``path`` under the cap; the exit status tells the parent what happened."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))
    # The default SIGPIPE and SIGABRT handling: a crash shows as a signal to the parent.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    from slidescope.app.slides import open_slide

    try:
        with open_slide(path) as slide:
            slide.thumbnail(256)
    except MemoryError:
        return _MEMORY_EXIT
    except SlideError as error:
        if isinstance(error, SlideTooLargeError) and isinstance(error.__cause__, MemoryError):
            return _MEMORY_EXIT
        print(json.dumps({"error": type(error).__name__, "reason": error.reason}))
        return _SLIDE_ERROR_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1], int(sys.argv[2])))
