"""A SlideScope project: a folder that lists slides, their thumbnails and analysis states.

On disk, in plain files a person can read (like a QuPath project)::

    my-project/
        project.json              # name, slides (path, identity, label, analyses), the
                                  # class list, model versions; written atomically
        thumbnails/<slide_id>.png
        annotations/<slide_id>.geojson   # QuPath-shaped GeoJSON, level-0 px
        models/<name>.safetensors # model versions: added, never overwritten
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
from slidescope.app.annotations.classes import DEFAULT_CLASSES, PathClass
from slidescope.app.errors import SlideScopeError
from slidescope.app.project.labels import read_labels_csv, write_labels_csv
from slidescope.app.project.model_versions import ModelVersion, file_sha256
from slidescope.app.slides.slide import slide_id_of
from slidescope.models.files import write_bytes_atomic

PROJECT_FILE = "project.json"
# 2: slide labels, the class list, model versions (format 1 files are read as they are)
FORMAT_VERSION = 2
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
    label : str or None
        The slide's class for training (e.g. ``"tumor"``), None when not labelled.
    """

    slide_id: str
    path: str
    identity: dict[str, Any] | None = None
    analyses: dict[str, dict[str, Any]] = field(default_factory=dict)
    added: str = ""
    label: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SlideEntry:
        return cls(
            slide_id=str(data["slide_id"]),
            path=str(data["path"]),
            identity=data.get("identity"),
            analyses=dict(data.get("analyses") or {}),
            added=str(data.get("added", "")),
            label=str(data["label"]) if data.get("label") not in (None, "") else None,
        )


@dataclass
class Project:
    """A project folder and its slides; :meth:`save` writes ``project.json`` atomically.

    Changes are in memory until :meth:`save`.
    """

    folder: Path
    name: str
    slides: list[SlideEntry] = field(default_factory=list)
    created: str = ""
    classes: list[PathClass] = field(default_factory=lambda: list(DEFAULT_CLASSES))
    model_versions: list[ModelVersion] = field(default_factory=list)
    active_model: str | None = None
    #: each slide path as the file system resolves it (``find``: one system call a slide,
    #: a project of 1,000 slides took 0.15 s per lookup, several per slide shown)
    _resolved: dict[Path, Path] = field(default_factory=dict, repr=False, compare=False)

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
            classes = (
                [PathClass.from_dict(c) for c in data["classes"]]
                if data.get("classes") is not None
                else list(DEFAULT_CLASSES)
            )
            versions = [ModelVersion.from_dict(m) for m in data.get("model_versions") or []]
            active = data.get("active_model")
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
            classes=classes,
            model_versions=versions,
            active_model=str(active) if active else None,
        )

    def save(self) -> None:
        """Write ``project.json`` atomically and make sure the project's folders exist."""
        for sub in (self.thumbnails_dir, self.caches_dir, self.results_dir, self.annotations_dir):
            sub.mkdir(parents=True, exist_ok=True)
        data = {
            "format_version": FORMAT_VERSION,
            "name": self.name,
            "created": self.created,
            "saved": _now(),
            "slides": [asdict(s) for s in self.slides],
            "classes": [c.to_dict() for c in self.classes],
            "model_versions": [m.to_dict() for m in self.model_versions],
            "active_model": self.active_model,
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

    @property
    def annotations_dir(self) -> Path:
        return self.folder / "annotations"

    @property
    def models_dir(self) -> Path:
        return self.folder / "models"

    def thumbnail_path(self, slide_id: str) -> Path:
        return self.thumbnails_dir / f"{slide_id}.png"

    def annotation_path(self, slide_id: str) -> Path:
        """``annotations/<slide_id>.geojson`` (whether or not it exists yet)."""
        return self.annotations_dir / f"{slide_id}.geojson"

    # -- classes -----------------------------------------------------------------------------

    def path_class(self, name: str) -> PathClass | None:
        return next((c for c in self.classes if c.name == name), None)

    def set_class(self, name: str, color: tuple[int, int, int]) -> PathClass:
        """Add a class, or change the colour of one, keeping its place in the list."""
        new = PathClass(name, tuple(int(c) for c in color))  # type: ignore[arg-type]
        for i, existing in enumerate(self.classes):
            if existing.name == name:
                self.classes[i] = new
                return new
        self.classes.append(new)
        return new

    # -- labels ------------------------------------------------------------------------------

    def set_label(self, slide_id: str, label: str | None) -> None:
        """Give a slide its label (None or "" clears it)."""
        self.slide(slide_id).label = label.strip() if label and label.strip() else None

    def labels(self) -> dict[str, str]:
        """``slide_id -> label`` of the labelled slides."""
        return {e.slide_id: e.label for e in self.slides if e.label}

    def import_labels_csv(self, path: str | Path) -> list[str]:
        """Set labels from a ``slide_id,label`` CSV; returns the ids not in the project."""
        unknown = []
        known = {e.slide_id: e for e in self.slides}
        for slide_id, label in read_labels_csv(path).items():
            if slide_id in known:
                known[slide_id].label = label
            else:
                unknown.append(slide_id)
        return unknown

    def export_labels_csv(self, path: str | Path) -> Path:
        """Write the labelled slides as a ``slide_id,label`` CSV (atomically)."""
        return write_labels_csv(path, self.labels().items())

    # -- model versions ----------------------------------------------------------------------

    def model_version(self, name: str) -> ModelVersion:
        for version in self.model_versions:
            if version.name == name:
                return version
        raise ProjectError(f"{self.folder}: no model version {name!r} in the project")

    def model_path(self, name: str) -> Path:
        """The absolute path of a model version's file."""
        return self.folder / self.model_version(name).file

    def add_model_version(self, path: str | Path, base: str | None = None) -> ModelVersion:
        """Register a model file already written under ``models/``; never overwrites.

        Parameters
        ----------
        path : str or Path
            A file inside :attr:`models_dir`; its stem becomes the version's name.
        base : str, optional
            The version it was fine-tuned from (must be in the project).
        """
        path = Path(path).expanduser().resolve()
        try:
            relative = path.relative_to(self.models_dir.resolve())
        except ValueError:
            raise ProjectError(
                f"{path}: a model version must be written under {self.models_dir} first"
            ) from None
        if not path.is_file():
            raise ProjectError(f"{path}: no such model file")
        if base is not None:
            self.model_version(base)
        name = path.stem
        if any(v.name == name for v in self.model_versions):
            raise ProjectError(
                f"{path}: the project already has a model version {name!r}; "
                "versions are added under new names, never replaced"
            )
        version = ModelVersion(
            name=name,
            file=(Path("models") / relative).as_posix(),
            base=base,
            created=_now(),
            sha256=file_sha256(path),
        )
        self.model_versions.append(version)
        return version

    def set_active_model(self, name: str | None) -> None:
        """Make a version the one the project uses (None: none)."""
        if name is not None:
            self.model_version(name)
        self.active_model = name

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
        return next((e for e in self.slides if self._resolved_path(e) == target), None)

    def find_all(self, paths: Iterable[str | Path]) -> list[SlideEntry | None]:
        """The entries of many slide files (None where the project has not the file), in one
        pass over the project: a whole project's lookups, not a pass each."""
        by_path: dict[Path, SlideEntry] = {}
        for entry in self.slides:
            by_path.setdefault(self._resolved_path(entry), entry)
        return [by_path.get(Path(p).expanduser().resolve()) for p in paths]

    def _resolved_path(self, entry: SlideEntry) -> Path:
        stored = self.slide_path(entry)
        resolved = self._resolved.get(stored)
        if resolved is None:
            resolved = self._resolved[stored] = stored.resolve()
        return resolved

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
