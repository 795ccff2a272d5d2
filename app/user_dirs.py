"""Where SlideScope keeps per-user files: the cache (demo slide) and settings (recent files)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

RECENT_LIMIT = 10


def user_cache_dir() -> Path:
    """``$SLIDESCOPE_CACHE``, else ``$XDG_CACHE_HOME/slidescope``, else ``~/.cache/slidescope``."""
    if os.environ.get("SLIDESCOPE_CACHE"):
        return Path(os.environ["SLIDESCOPE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "slidescope"


def user_config_dir() -> Path:
    """``$SLIDESCOPE_CONFIG``, else ``$XDG_CONFIG_HOME/slidescope``, else ``~/.config/slidescope``."""
    if os.environ.get("SLIDESCOPE_CONFIG"):
        return Path(os.environ["SLIDESCOPE_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "slidescope"


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
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".recent.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(items, f, indent=1)
        os.replace(tmp, folder / "recent.json")
    except OSError:
        pass  # a read-only home must not stop a slide from opening
    return items
