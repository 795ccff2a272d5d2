"""The command line starts light: ``--help`` and the commands that need no model import
no torch (each command declares its options only when it is the one run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from slidescope.app.cli import build_parser

PROBE = (
    "import sys\n"
    "from slidescope.app.cli import main\n"
    "try:\n"
    "    main(sys.argv[1:])\n"
    "except SystemExit:\n"
    "    pass\n"
    "print('torch' in sys.modules, file=sys.stderr)\n"
)


def _imports_torch(*words: str) -> bool:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *words], capture_output=True, text=True, timeout=120
    )
    return done.stderr.strip().splitlines()[-1] == "True"


def test_help_and_info_import_no_torch(tmp_path: Path) -> None:
    import numpy as np
    import tifffile

    slide = tmp_path / "s.tif"
    tifffile.imwrite(slide, np.full((512, 512, 3), 200, np.uint8), tile=(256, 256))
    assert not _imports_torch("--help")
    assert not _imports_torch("info", str(slide))
    assert not _imports_torch("convert", "--help")
    assert _imports_torch("train", "--help")  # its --model help lists the registry's models


def test_the_top_level_help_is_the_same_without_the_commands_options() -> None:
    assert build_parser(detailed=()).format_help() == build_parser().format_help()
