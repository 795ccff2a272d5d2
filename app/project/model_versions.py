"""Model versions of a project: files under ``models/``, added and never overwritten."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelVersion:
    """One model file of a project.

    Attributes
    ----------
    name : str
        Unique in the project (the file's stem).
    file : str
        Path relative to the project folder, e.g. ``models/tumor-ft1.safetensors``.
    base : str or None
        The name of the version it was fine-tuned from.
    created : str
        ISO time it was registered.
    sha256 : str
        Of the file, so a later change of the file is noticed.
    """

    name: str
    file: str
    base: str | None
    created: str
    sha256: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelVersion:
        base = data.get("base")
        return cls(
            name=str(data["name"]),
            file=str(data["file"]),
            base=str(base) if base is not None else None,
            created=str(data.get("created", "")),
            sha256=str(data.get("sha256", "")),
        )


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
