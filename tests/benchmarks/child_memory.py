"""Peak memory of a fresh Python process, measured by the process itself.

``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` is the largest peak of *every* child
this process has waited for, so in ``make bench`` (one pytest for all benchmarks) it
reports whichever earlier benchmark's child was biggest. Even one child's own
``ru_maxrss`` carries the parent's peak over fork + exec. The kernel's ``VmHWM`` of the
child's own address space is neither: the child prints it last.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

_FOOTER = """
for _line in open('/proc/self/status'):
    if _line.startswith('VmHWM'):
        print(int(_line.split()[1]) / 1024)
"""


def run_measured(code: str, *args: str) -> tuple[float, float, str]:
    """Run ``code`` (with ``args`` in ``sys.argv``) in a fresh Python.

    Returns its wall seconds, its peak resident memory in MiB (VmHWM), and what it
    printed before that.
    """
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code) + _FOOTER, *args],
        capture_output=True,
        text=True,
        check=True,
    )
    seconds = time.perf_counter() - start
    *printed, peak = result.stdout.strip().splitlines()
    return seconds, float(peak), "\n".join(printed)
