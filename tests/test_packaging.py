"""The package is installable as declared and its core stays free of Qt."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = {
    "app": "slidescope.app",
    "models": "slidescope.models",
    "plugins": "slidescope.plugins",
    "resources": "slidescope.resources",
}


def test_every_package_is_listed_in_pyproject() -> None:
    declared = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    found = set()
    for folder, package in TOP_LEVEL.items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            found.add(".".join([package, *rel.parts]))
    assert found == declared


def test_core_imports_without_qt() -> None:
    """Import every core module with Qt and napari made unimportable."""
    code = """
import importlib, pkgutil, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'PySide6', 'PyQt5', 'PyQt6', 'qtpy', 'superqt', 'napari', 'vispy'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
import slidescope.app, slidescope.models
for pkg in (slidescope.app, slidescope.models):
    for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):
        if '.ui' in m.name or m.name.endswith('__main__'):
            continue
        importlib.import_module(m.name)
print('ok')
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_cli_help_lists_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "slidescope.app.cli", "--help"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert "usage: slidescope" in result.stdout
