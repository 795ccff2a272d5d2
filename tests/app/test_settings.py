"""The desktop app's settings file: round trip, damage set aside, read-only folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from slidescope.app.settings import Settings, load_settings, save_settings, settings_path


@pytest.fixture(autouse=True)
def _private_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIDESCOPE_CONFIG", str(tmp_path / "config"))


def test_missing_file_gives_defaults_without_warning() -> None:
    settings, warning = load_settings()
    assert settings == Settings()
    assert warning is None


def test_settings_round_trip() -> None:
    saved = Settings(
        window_geometry="AdnQywAD",
        last_checkpoint="/models/m.safetensors",
        views={"/s/a.svs": {"center": [10.0, 20.0], "zoom": 0.5}},
    )
    assert save_settings(saved) == settings_path()
    loaded, warning = load_settings()
    assert warning is None
    assert loaded == saved


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", '{"views": "x"}', "\udcff"])
def test_damaged_file_is_set_aside_with_a_warning(text: str) -> None:
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    settings, warning = load_settings()
    assert settings == Settings()
    assert warning is not None
    assert str(path) in warning
    assert "settings.json.damaged" in warning
    assert not path.exists()
    assert path.with_name("settings.json.damaged").read_bytes() == text.encode(
        "utf-8", "surrogateescape"
    )
    # the next save starts a fresh file and the set-aside copy stays
    save_settings(Settings(last_project="/p"))
    assert load_settings() == (Settings(last_project="/p"), None)


def test_unknown_keys_are_ignored() -> None:
    path = settings_path()
    path.parent.mkdir(parents=True)
    path.write_text('{"last_project": "/p", "from_a_newer_version": 3}')
    assert load_settings() == (Settings(last_project="/p"), None)


def test_read_only_config_folder_does_not_stop_the_app(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLIDESCOPE_CONFIG", "/proc/slidescope-cannot-write-here")
    assert save_settings(Settings()) is None
