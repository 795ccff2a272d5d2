"""The export tests' synthetic analysis and checkpoint writers, loaded by file path.

``tests/app/export/conftest.py`` cannot be imported as ``conftest`` from here (that name
is the root conftest's), so it is loaded under its own name.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


def export_conftest() -> ModuleType:
    name = "slidescope_tests_export_conftest"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "export" / "conftest.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sys.modules[name] = module
    return sys.modules[name]
