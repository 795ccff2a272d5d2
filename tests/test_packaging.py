"""The package is installable as declared and its core stays free of Qt."""

from __future__ import annotations

import contextlib
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


def test_bare_paths_mean_open_and_no_words_mean_gui(monkeypatch) -> None:
    from slidescope.app import cli

    seen: list[str] = []
    real_parse = cli.argparse.ArgumentParser.parse_args

    def spy(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        seen.append(" ".join(args or []))
        raise SystemExit(0)

    monkeypatch.setattr(cli.argparse.ArgumentParser, "parse_args", spy)
    for argv in ([], ["slide.svs", "b.tiff"], ["info", "x.svs"]):
        with contextlib.suppress(SystemExit):
            cli.main(argv)
    monkeypatch.setattr(cli.argparse.ArgumentParser, "parse_args", real_parse)
    assert seen == ["gui", "open slide.svs b.tiff", "info x.svs"]
