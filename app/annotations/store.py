"""Where a slide's annotations are kept, and how they are saved and opened again.

In a project: ``<project>/annotations/<slide_id>.geojson``. A slide opened alone: the user
data folder (:func:`slidescope.app.user_dirs.user_data_dir`), under ``annotations/``, keyed by
the slide's identity (its id and fingerprint), so the same slide finds them again and a
different file with the same name does not.

Saving is synchronous and atomic, keeping the previous version as ``.bkp``. WHEN to save is
the face's business (the window saves off its UI thread within :data:`AUTOSAVE_DELAY_S` of
the first unsaved edit, and on slide switch and close); nothing here starts a thread.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from slidescope.app.annotations.annotation_io import (
    RepairReport,
    read_annotations,
    write_annotations,
)
from slidescope.app.annotations.classes import DEFAULT_CLASSES, PathClass
from slidescope.app.annotations.features import GeoJSONError
from slidescope.app.annotations.model import Annotation, AnnotationSet
from slidescope.app.user_dirs import user_data_dir
from slidescope.models.files import backup_path, remove_stale_temps

if TYPE_CHECKING:
    from slidescope.app.project.project import Project

AUTOSAVE_DELAY_S = 1.0  # first unsaved edit -> save; with the write itself, well under 2 s

log = logging.getLogger(__name__)


class AnnotationStore:
    """The file of one slide's annotations.

    Parameters
    ----------
    path : str or Path
        The ``.geojson`` file (need not exist yet).
    classes : iterable of PathClass, optional
        Class colours written with each annotation.
    slide_identity : dict, optional
        Written into the file and given to loaded sets.
    """

    def __init__(
        self,
        path: str | Path,
        classes: Iterable[PathClass] | None = None,
        slide_identity: dict[str, Any] | None = None,
    ) -> None:
        self.path = Path(path)
        self.classes = list(classes) if classes is not None else list(DEFAULT_CLASSES)
        self.slide_identity = slide_identity
        self.warning: str | None = None  # set by load() when it had to open the backup
        self.report: RepairReport | None = None  # what load() repaired
        self.saved_revision: int | None = None

    # -- where -----------------------------------------------------------------------------

    @classmethod
    def for_project(cls, project: Project, slide_id: str) -> AnnotationStore:
        """The store of a project's slide, with the project's classes."""
        identity = project.slide(slide_id).identity
        return cls(project.annotation_path(slide_id), project.classes, identity)

    @classmethod
    def for_slide(
        cls, identity: dict[str, Any], classes: Iterable[PathClass] | None = None
    ) -> AnnotationStore:
        """The store of a slide opened outside a project, in the user data folder."""
        return cls(user_annotation_path(identity), classes, identity)

    @property
    def backup(self) -> Path:
        return backup_path(self.path)

    # -- load / save -----------------------------------------------------------------------

    def load(self, slide_dimensions: tuple[int, int] | None = None) -> AnnotationSet:
        """The saved annotations (an empty set when none were saved yet).

        When the file is damaged (a crash of another program, a disk error), the previous
        version (``.bkp``) is opened instead and :attr:`warning` names both files.

        Raises
        ------
        GeoJSONError
            When both the file and its backup are unreadable.
        """
        self.warning = None
        remove_stale_temps(self.path.parent)
        if not self.path.exists() and not self.backup.exists():
            annotations = AnnotationSet(slide_identity=self.slide_identity)
            self.report = RepairReport(path=str(self.path))
        else:
            try:
                annotations, self.report = read_annotations(self.path, slide_dimensions)
            except GeoJSONError as error:
                if not self.backup.exists():
                    raise
                try:
                    annotations, self.report = read_annotations(self.backup, slide_dimensions)
                except GeoJSONError as backup_error:
                    raise GeoJSONError(
                        f"{self.path}: damaged ({error}); its backup {self.backup.name} too "
                        f"({backup_error})"
                    ) from None
                self.warning = (
                    f"{self.path} is damaged ({_reason(error)}); opened the previous version "
                    f"{self.backup} instead: the last edits before it may be missing"
                )
                log.warning(self.warning)
        if annotations.slide_identity is None:
            annotations.slide_identity = self.slide_identity
        self.saved_revision = annotations.revision
        return annotations

    def save(
        self, annotations: AnnotationSet | Iterable[Annotation], revision: int | None = None
    ) -> Path:
        """Write the annotations now (atomic, previous version kept as ``.bkp``).

        Parameters
        ----------
        annotations : AnnotationSet or iterable of Annotation
            Pass :meth:`AnnotationSet.snapshot` when saving from another thread.
        revision : int, optional
            The set's :attr:`AnnotationSet.revision` the snapshot was taken at; recorded
            as :attr:`saved_revision`.
        """
        if isinstance(annotations, AnnotationSet):
            revision = annotations.revision if revision is None else revision
        write_annotations(self.path, annotations, self.classes, self.slide_identity)
        self.saved_revision = revision
        return self.path

    def is_saved(self, annotations: AnnotationSet) -> bool:
        """Whether ``annotations`` has no edit since it was loaded or saved here."""
        return self.saved_revision == annotations.revision


def user_annotation_path(identity: dict[str, Any]) -> Path:
    """``<user data>/annotations/<slide_id>-<fingerprint>.geojson`` for a slide alone."""
    slide_id = re.sub(r"[^A-Za-z0-9._-]+", "_", str(identity.get("slide_id") or "slide"))
    fingerprint = re.sub(r"[^A-Za-z0-9]+", "", str(identity.get("fingerprint") or ""))[:32]
    name = f"{slide_id}-{fingerprint}" if fingerprint else slide_id
    return user_data_dir() / "annotations" / f"{name}.geojson"


def _reason(error: GeoJSONError) -> str:
    text = str(error)
    return text.split(": ", 1)[1] if ": " in text else text
