"""Where SlideScope keeps per-user files: the cache (demo slide) and settings (recent files)."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import platformdirs
from slidescope.models.files import write_text_atomic

RECENT_LIMIT = 10


APP_NAME = "slidescope"


def user_cache_dir() -> Path:
    """``$SLIDESCOPE_CACHE``, else the platform's user cache folder (platformdirs).

    ``~/.cache/slidescope`` on Linux (``$XDG_CACHE_HOME`` respected),
    ``~/Library/Caches/slidescope`` on macOS, ``%LOCALAPPDATA%\\slidescope\\Cache`` on Windows.
    """
    if os.environ.get("SLIDESCOPE_CACHE"):
        return Path(os.environ["SLIDESCOPE_CACHE"]).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def user_config_dir() -> Path:
    """``$SLIDESCOPE_CONFIG``, else the platform's user settings folder (platformdirs).

    ``~/.config/slidescope`` on Linux (``$XDG_CONFIG_HOME`` respected),
    ``~/Library/Application Support/slidescope`` on macOS, ``%APPDATA%\\slidescope`` on Windows.
    """
    if os.environ.get("SLIDESCOPE_CONFIG"):
        return Path(os.environ["SLIDESCOPE_CONFIG"]).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False, roaming=True))


def user_data_dir() -> Path:
    """``$SLIDESCOPE_DATA``, else ``$XDG_DATA_HOME/slidescope``, else ``~/.local/share/slidescope``.

    Work a user makes outside a project lives here (annotations of a slide opened alone).
    """
    if os.environ.get("SLIDESCOPE_DATA"):
        return Path(os.environ["SLIDESCOPE_DATA"]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "slidescope"


def recent_files() -> list[str]:
    """The most recently opened slides and projects, newest first (missing ones left out)."""
    file = user_config_dir() / "recent.json"
    try:
        items = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return [str(p) for p in items if isinstance(p, str) and Path(p).exists()][:RECENT_LIMIT]


def remember_recent(path: str | Path) -> list[str]:
    """Put ``path`` first in the recent list (saved atomically); returns the new list."""
    path = str(Path(path).expanduser().resolve())
    items = [path, *(p for p in recent_files() if p != path)][:RECENT_LIMIT]
    folder = user_config_dir()
    with contextlib.suppress(OSError):  # a read-only home must not stop a slide from opening
        write_text_atomic(folder / "recent.json", json.dumps(items, indent=1))
    return items
