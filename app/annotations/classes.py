"""Annotation classes: a name and a colour, shared by every slide of a project.

The defaults are QuPath's (``PathClass.StandardPathClasses``) with QuPath's colours, so a
class drawn here looks the same when the file is opened in QuPath and back. As in QuPath, a
class whose name ends with ``*`` (``Region*``, ``Ignore*``) marks areas that analyses leave
out (:func:`is_ignore`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

RGB = tuple[int, int, int]

UNCLASSIFIED = "Unclassified"
UNCLASSIFIED_COLOR: RGB = (128, 128, 128)


@dataclass(frozen=True)
class PathClass:
    """A class of annotation (QuPath's name for it) and its display colour.

    Attributes
    ----------
    name : str
        As the user and QuPath see it, e.g. ``"Tumor"``.
    color : tuple of int
        ``(r, g, b)``, 0-255.
    """

    name: str
    color: RGB

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "color": list(self.color)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PathClass:
        name = str(data["name"])
        color = data.get("color")
        return cls(name, parse_color(color) if color is not None else color_for_name(name))


DEFAULT_CLASSES: tuple[PathClass, ...] = (
    PathClass("Tumor", (200, 0, 0)),
    PathClass("Stroma", (150, 200, 150)),
    PathClass("Immune cells", (160, 90, 160)),
    PathClass("Necrosis", (50, 50, 50)),
    PathClass("Other", (255, 200, 0)),
    PathClass("Region*", (0, 0, 180)),
    PathClass("Ignore*", (180, 180, 180)),
)


def is_ignore(name: str | None) -> bool:
    """Whether a class marks areas to leave out (QuPath: a name ending with ``*``)."""
    return bool(name) and str(name).rstrip().endswith("*")


def parse_color(value: Any) -> RGB:
    """A colour from ``[r, g, b]`` (QuPath >= 0.3) or a packed int (QuPath's ``colorRGB``).

    Raises
    ------
    ValueError
        When the value is neither.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a colour: {value!r}")
    if isinstance(value, int):
        # Java's packed ARGB int, possibly negative (alpha set)
        value &= 0xFFFFFF
        return ((value >> 16) & 255, (value >> 8) & 255, value & 255)
    if isinstance(value, (list, tuple)) and len(value) >= 3:
        r, g, b = (round(float(c)) for c in value[:3])
        return (min(max(r, 0), 255), min(max(g, 0), 255), min(max(b, 0), 255))
    raise ValueError(f"not a colour: {value!r}")


def color_for_name(name: str | None) -> RGB:
    """A stable colour for a class not in the list (the same name, the same colour)."""
    if not name:
        return UNCLASSIFIED_COLOR
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    # keep colours away from black and white so outlines stay visible on H&E
    return (60 + digest[0] % 180, 60 + digest[1] % 180, 60 + digest[2] % 180)


def class_color(name: str | None, classes: Iterable[PathClass] = DEFAULT_CLASSES) -> RGB:
    """The colour of a class by name: from ``classes``, else a stable colour for the name."""
    if name is None:
        return UNCLASSIFIED_COLOR
    for path_class in classes:
        if path_class.name == name:
            return path_class.color
    return color_for_name(name)


def merge_classes(classes: Iterable[PathClass], found: Mapping[str, RGB]) -> list[PathClass]:
    """``classes`` plus any class in ``found`` (name -> colour) that it lacks, in order."""
    merged = list(classes)
    names = {c.name for c in merged}
    for name, color in found.items():
        if name not in names:
            merged.append(PathClass(name, color))
            names.add(name)
    return merged
