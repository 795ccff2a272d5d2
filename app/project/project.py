"""A SlideScope project: a folder that lists slides, their thumbnails and analysis states.

On disk, in plain files a person can read (like a QuPath project)::

    my-project/
        project.json              # name, slides (path, identity, analyses), written atomically
        thumbnails/<slide_id>.png
        caches/                   # features and other reusable intermediate results
        results/                  # heatmaps, exports, predictions

Slide paths inside the project folder are stored relative to it, so a project moved
together with its slides still opens; others are stored absolute.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.errors import SlideScopeError
from slidescope.app.slides.slide import slide_id_of
from slidescope.models.files import write_bytes_atomic

PROJECT_FILE = "project.json"
FORMAT_VERSION = 1
SLIDE_SUFFIXES = (
    ".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".dcm", ".zarr",
)  # fmt: skip
ANALYSIS_STATES = ("queued", "running", "done", "failed", "cancelled")


class ProjectError(SlideScopeError):
    """A project folder cannot be created, read or changed."""


@dataclass
class SlideEntry:
    """One slide of a project.

    Attributes
    ----------
    slide_id : str
        Unique within the project (the file's stem, with ``-2``, ``-3`` ... on a clash).
    path : str
        The slide's path, relative to the project folder when inside it.
    identity : dict or None
        :meth:`SlideIdentity.to_dict` once the slide has been opened.
    analyses : dict
        Per analysis key (e.g. a checkpoint's name): ``{"state": ..., "updated": ...,
        plus whatever the analysis records, e.g. "result": "results/..."}``.
    added : str
        ISO time the slide joined the project.
    """

    slide_id: str
    path: str
    identity: dict[str, Any] | None = None
    analyses: dict[str, dict[str, Any]] = field(default_factory=dict)
    added: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlideEntry:
        return cls(
            slide_id=str(data["slide_id"]),
            path=str(data["path"]),
            identity=data.get("identity"),
            analyses=dict(data.get("analyses") or {}),
            added=str(data.get("added", "")),
        )


@dataclass
class Project:
    """A project folder and its slides; :meth:`save` writes ``project.json`` atomically."""

    folder: Path
    name: str
    slides: list[SlideEntry] = field(default_factory=list)
    created: str = ""

    # -- lifecycle -------------------------------------------------------------------------

    @classmethod
    def create(cls, folder: str | Path, name: str | None = None) -> Project:
        """Make a new project in ``folder`` (created if needed; must not hold a project)."""
        folder = Path(folder).expanduser().resolve()
        if (folder / PROJECT_FILE).exists():
            raise ProjectError(
                f"{folder}: already holds a project; open it instead of creating a new one"
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ProjectError(f"{folder}: cannot create the project folder ({error})") from error
        project = cls(folder=folder, name=name or folder.name, created=_now())
        project.save()
        return project

    @classmethod
    def open(cls, folder: str | Path) -> Project:
        """Read the project in ``folder`` (or the ``project.json`` path itself)."""
        folder = Path(folder).expanduser().resolve()
        if folder.name == PROJECT_FILE:
            folder = folder.parent
        file = folder / PROJECT_FILE
        if not file.is_file():
            raise ProjectError(f"{folder}: not a SlideScope project (no {PROJECT_FILE})")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            version = int(data.get("format_version", 0))
            slides = [SlideEntry.from_dict(s) for s in data.get("slides", [])]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise ProjectError(f"{file}: damaged project file ({error})") from error
        if version > FORMAT_VERSION:
            raise ProjectError(
                f"{file}: written by a newer SlideScope (format {version}); update SlideScope"
            )
        return cls(
            folder=folder,
            name=str(data.get("name", folder.name)),
            slides=slides,
            created=str(data.get("created", "")),
        )

    def save(self) -> None:
        """Write ``project.json`` atomically and make sure the project's folders exist."""
        for sub in (self.thumbnails_dir, self.caches_dir, self.results_dir):
            sub.mkdir(parents=True, exist_ok=True)
        data = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "created": self.created,
            "saved": _now(),
            "slides": [asdict(s) for s in self.slides],
        }
        write_bytes_atomic(self.folder / PROJECT_FILE, json.dumps(data, indent=2).encode())

    # -- folders -------------------------------------------------------------------------

    @property
    def thumbnails_dir(self) -> Path:
        return self.folder / "thumbnails"

    @property
    def caches_dir(self) -> Path:
        return self.folder / "caches"

    @property
    def results_dir(self) -> Path:
        return self.folder / "results"

    def thumbnail_path(self, slide_id: str) -> Path:
        return self.thumbnails_dir / f"{slide_id}.png"

    # -- slides ----------------------------------------------------------------------------

    def __iter__(self) -> Iterator[SlideEntry]:
        return iter(self.slides)

    def __len__(self) -> int:
        return len(self.slides)

    def slide(self, slide_id: str) -> SlideEntry:
        for entry in self.slides:
            if entry.slide_id == slide_id:
                return entry
        raise ProjectError(f"{self.folder}: no slide {slide_id!r} in the project")

    def slide_path(self, entry: SlideEntry | str) -> Path:
        """The absolute path of a slide."""
        if isinstance(entry, str):
            entry = self.slide(entry)
        path = Path(entry.path)
        return path if path.is_absolute() else self.folder / path

    def find(self, path: str | Path) -> SlideEntry | None:
        """The entry of a slide file, if the project has it."""
        target = Path(path).expanduser().resolve()
        return next((e for e in self.slides if self.slide_path(e).resolve() == target), None)

    def add_slide(self, path: str | Path, identity: dict[str, Any] | None = None) -> SlideEntry:
        """Add a slide file (a no-op returning the entry when it is already there)."""
        path = Path(path).expanduser().resolve()
        if not path.exists():
            raise ProjectError(f"{path}: no such slide file")
        existing = self.find(path)
        if existing is not None:
            return existing
        taken = {e.slide_id for e in self.slides}
        base = slide_id = slide_id_of(path)
        n = 2
        while slide_id in taken:
            slide_id, n = f"{base}-{n}", n + 1
        try:
            stored = path.relative_to(self.folder).as_posix()
        except ValueError:
            stored = path.as_posix()
        entry = SlideEntry(slide_id=slide_id, path=stored, identity=identity, added=_now())
        self.slides.append(entry)
        return entry

    def add_folder(self, folder: str | Path) -> list[SlideEntry]:
        """Add every slide file directly in ``folder`` (sorted by name); returns the new ones."""
        folder = Path(folder)
        if not folder.is_dir():
            raise ProjectError(f"{folder}: not a folder")
        before = len(self.slides)
        for path in sorted(_slide_files(folder.iterdir())):
            self.add_slide(path)
        return self.slides[before:]

    def remove_slide(self, slide_id: str) -> None:
        """Take a slide off the list (its file and results stay on disk)."""
        entry = self.slide(slide_id)
        self.slides.remove(entry)
        self.thumbnail_path(slide_id).unlink(missing_ok=True)

    def set_analysis(self, slide_id: str, key: str, state: str, **info: Any) -> None:
        """Record the state of an analysis (``queued``, ``running``, ``done``, ...)."""
        if state not in ANALYSIS_STATES:
            raise ProjectError(f"unknown analysis state {state!r}; one of {ANALYSIS_STATES}")
        entry = self.slide(slide_id)
        entry.analyses[key] = {**entry.analyses.get(key, {}), **info, "state": state}
        entry.analyses[key]["updated"] = _now()

    def write_thumbnail(self, slide_id: str, image: np.ndarray) -> Path:
        """Save an RGB thumbnail as ``thumbnails/<slide_id>.png`` (atomically)."""
        import io

        from PIL import Image

        buffer = io.BytesIO()
        Image.fromarray(np.asarray(image, dtype=np.uint8)[..., :3]).save(buffer, format="PNG")
        target = self.thumbnail_path(slide_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(target, buffer.getvalue())
        return target


def is_slide_path(path: str | Path) -> bool:
    """Whether a path looks like a slide file or an OME-Zarr folder by its name."""
    return Path(path).name.lower().endswith(SLIDE_SUFFIXES)


def _slide_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if is_slide_path(path) and (path.is_file() or path.suffix.lower() == ".zarr"):
            yield path


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
