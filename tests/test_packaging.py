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


BLOCK_QT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'PySide6', 'PyQt5', 'PyQt6', 'qtpy', 'superqt', 'napari', 'vispy'}:
            raise ImportError('blocked: ' + name)
sys.meta_path.insert(0, Block())
from slidescope.app.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli_without_qt(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", BLOCK_QT, *args], capture_output=True, text=True, timeout=600
    )


def test_core_cli_exports_without_qt(tmp_path: Path) -> None:
    """A cluster worker's install (no Qt, no napari) makes a slide and exports its heatmaps."""
    from slidescope.resources import resource_path

    slide = tmp_path / "tiny.tiff"
    made = _cli_without_qt("demo-slide", str(slide), "--width", "2048", "--height", "2048")
    assert made.returncode == 0, made.stderr
    out = tmp_path / "heat"
    result = _cli_without_qt(
        "export", str(slide), "--checkpoint", str(resource_path("demo_model.safetensors")),
        "--out", str(out), "--workers", "0", "--kinds", "attention",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert (out / "tiny" / "tiny.attention.png").stat().st_size > 0
    window = _cli_without_qt("gui")
    assert window.returncode == 2
    assert "pip install 'slidescope[gui]'" in window.stderr
    assert "Traceback" not in window.stderr


def test_version_is_the_package_version() -> None:
    from importlib.metadata import version

    result = subprocess.run(
        [sys.executable, "-m", "slidescope.app.cli", "--version"], capture_output=True, text=True
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"slidescope {version('slidescope')}"
