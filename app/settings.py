"""The desktop app's remembered settings: window layout, recent files, last checkpoint.

One JSON file in the user's config folder (:func:`slidescope.app.user_dirs.user_config_dir`,
the platform's folder through platformdirs), written atomically. A file that cannot be read
is never fatal: it is set aside as ``settings.json.damaged`` (so nothing is lost and a person
can look at it) and the app starts with defaults and a warning saying so.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from slidescope.app.user_dirs import user_config_dir
from slidescope.models.files import write_text_atomic

SETTINGS_FILE = "settings.json"


@dataclass
class Settings:
    """What the window remembers between runs.

    Attributes
    ----------
    window_geometry, window_state : str
        Qt's ``saveGeometry()`` / ``saveState()`` as base64 text ("" until first saved).
    last_checkpoint : str
        The checkpoint the analysis dock used last ("" for the bundled demo model).
    last_project : str
        The project folder open when the window closed.
    views : dict
        Per slide path, the last view: ``{"center": [x, y], "zoom": z, "slide": path}``.
    """

    window_geometry: str = ""
    window_state: str = ""
    last_checkpoint: str = ""
    last_project: str = ""
    views: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        """Settings from a JSON object; unknown keys are ignored, wrong types rejected."""
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for name, value in data.items():
            if name not in known:
                continue
            expected = dict if name == "views" else str
            if not isinstance(value, expected):
                raise TypeError(f"{name!r} should be a {expected.__name__}")
            values[name] = value
        return cls(**values)


def settings_path() -> Path:
    """Where the settings file lives."""
    return user_config_dir() / SETTINGS_FILE


def load_settings() -> tuple[Settings, str | None]:
    """Read the settings; returns them and a warning for the user, or None.

    A missing file gives the defaults silently. A damaged one (not JSON, wrong shape) is
    renamed to ``settings.json.damaged`` and the defaults are returned with a warning
    naming both files.
    """
    path = settings_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Settings(), None
    except OSError as error:
        return Settings(), f"{path}: cannot read the settings ({error}); using the defaults"
    try:
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        return Settings.from_dict(data), None
    except (ValueError, TypeError) as error:
        aside = path.with_name(SETTINGS_FILE + ".damaged")
        try:
            os.replace(path, aside)
        except OSError:
            return Settings(), f"{path}: damaged settings ({error}); using the defaults"
        return Settings(), (
            f"{path}: damaged settings ({error}); set aside as {aside.name}, using the defaults"
        )


def save_settings(settings: Settings) -> Path | None:
    """Write the settings atomically; returns the file, or None when the folder is read-only.

    Saving settings must never stop the app from closing, so an unwritable config folder
    is tolerated.
    """
    try:
        return write_text_atomic(settings_path(), json.dumps(asdict(settings), indent=1))
    except OSError:
        return None
