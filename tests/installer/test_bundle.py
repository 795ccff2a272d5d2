"""The desktop bundle: built by installer/build.sh, run as a fresh machine would run it.

Building takes minutes and a few GB of disk, so this runs with ``make installer-test``
(``SLIDESCOPE_INSTALLER_TEST=1``), not in every test run.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        os.environ.get("SLIDESCOPE_INSTALLER_TEST") != "1",
        reason="builds the desktop bundle (minutes); run with `make installer-test`",
    ),
]


def test_bundle_builds_and_passes_its_self_check_in_a_clean_environment() -> None:
    built = subprocess.run(
        ["bash", str(ROOT / "installer" / "build.sh")], capture_output=True, text=True
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    tarball = max((ROOT / "dist").glob("slidescope-*-linux-x86_64.tar.gz"), key=os.path.getmtime)
    unpacked = tarball.stat().st_size
    assert unpacked > 0
    checked = subprocess.run(
        ["bash", str(ROOT / "installer" / "test_bundle.sh"), str(tarball)],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout[-3000:] + checked.stderr[-3000:]
    assert "self-check passed" in checked.stdout
    assert "desktop-file-validate: ok" in checked.stdout
