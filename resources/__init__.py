"""Files shipped with SlideScope: icons, bundled demo weights, default settings."""

from __future__ import annotations

from importlib.resources import as_file, files
from pathlib import Path


def resource_path(name: str) -> Path:
    """The path of a bundled resource file, e.g. ``resource_path("icons/slidescope.svg")``.

    Raises
    ------
    FileNotFoundError
        When the package does not ship ``name``.
    """
    resource = files(__name__).joinpath(*name.split("/"))
    if not resource.is_file():
        raise FileNotFoundError(f"SlideScope resource {name!r} is missing from the package")
    # an installed (non-zip) package has real files, so the path outlives the context
    with as_file(resource) as path:
        return Path(path)


#: the bundled demo model's name (``--checkpoint demo_model``) and file
BUNDLED_MODEL = "demo_model"


def bundled_model() -> Path | None:
    """The demo checkpoint shipped here, or None where this install lacks it."""
    try:
        return resource_path(f"{BUNDLED_MODEL}.safetensors")
    except FileNotFoundError:
        return None
