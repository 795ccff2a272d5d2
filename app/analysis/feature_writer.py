"""The per-slide feature file, written incrementally and resumable (DESIGN.md, "Features").

``<slide_id>.h5`` holds ``features`` (N, D) float32 and ``coords`` (N, 2) int64 level-0
(x, y), resizable and chunked, with the attributes of the feature file contract. While
it is being written it lives beside its final name as ``<slide_id>.h5.partial`` with
``complete=False``, flushed after every batch; a killed run finds the partial file, keeps
the patches already written and goes on. When all patches are in, ``complete`` becomes
True and the file is renamed to its final name (atomic: a reader never sees half a file
under the final name).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

FORMAT_VERSION = 1
SETTINGS_ATTR = "extraction_settings"


def partial_path(path: Path) -> Path:
    """Where ``path`` lives while it is being written."""
    return path.with_name(path.name + ".partial")


def is_up_to_date(
    path: Path,
    settings: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
) -> bool:
    """True when ``path`` is a complete feature file that is still good to use.

    The one freshness check of feature files: the extraction job passes the exact
    ``settings`` it would extract with; inference passes the ``attrs`` a checkpoint needs
    (slide fingerprint, extractor, patch size, µm/px; ``None`` values are not checked).
    """
    if not path.is_file():
        return False
    try:
        with h5py.File(path, "r") as f:
            if not bool(f.attrs.get("complete", False)):
                return False
            if settings is not None and _settings_of(f) != _canonical(settings):
                return False
            return all(
                _same(f.attrs.get(name), expected)
                for name, expected in (attrs or {}).items()
                if expected is not None
            )
    except (OSError, ValueError, KeyError):
        return False


def _same(value: Any, expected: Any) -> bool:
    if isinstance(value, bytes):
        value = value.decode()
    if value is None:
        return False
    if isinstance(expected, float):
        return abs(float(value) - expected) < 1e-6
    return str(value) == str(expected)


class FeatureWriter:
    """Append batches of (coords, features) to a slide's feature file.

    Use :meth:`open`; then :meth:`append` per batch, :meth:`finish` at the end. Closing
    without finishing (cancel, crash) leaves the partial file for the next run to resume.
    """

    def __init__(self, file: h5py.File, path: Path) -> None:
        self._file = file
        self.path = path
        self._features = file["features"]
        self._coords = file["coords"]

    @classmethod
    def open(
        cls,
        path: Path,
        attrs: dict[str, Any],
        settings: dict[str, Any],
        coords_attrs: dict[str, Any],
        resume: bool = True,
    ) -> FeatureWriter:
        """Open (resume) or create the partial file of ``path``.

        Parameters
        ----------
        path : Path
            The final ``<slide_id>.h5``.
        attrs : dict
            Root attributes of the contract (``extractor``, ``feature_dim``, ...);
            ``complete`` and ``format_version`` are set here. None values are left out.
        settings : dict
            Everything that decides the content (slide fingerprint, extractor and its
            weights, geometry, tissue settings): a partial file made with other settings is
            discarded, and a complete file with equal settings is up to date.
        coords_attrs : dict
            Attributes of the ``coords`` dataset (CLAM's ``patch_size``, ``patch_level``).
        resume : bool
            Continue a partial file made with the same settings (else start afresh).
        """
        partial = partial_path(path)
        dim = int(attrs["feature_dim"])
        if resume and partial.is_file():
            try:
                file = h5py.File(partial, "r+")
            except OSError:
                file = None  # damaged by the kill: start again
            if file is not None:
                ok = (
                    _settings_of(file) == _canonical(settings)
                    and "features" in file
                    and "coords" in file
                    and file["features"].shape[0] == file["coords"].shape[0]
                )
                if ok:
                    return cls(file, path)
                file.close()
        partial.parent.mkdir(parents=True, exist_ok=True)
        file = h5py.File(partial, "w")
        try:
            file.create_dataset(
                "features",
                shape=(0, dim),
                maxshape=(None, dim),
                dtype="float32",
                chunks=(max(1, min(1024, (1 << 20) // max(1, dim * 4))), dim),
            )
            coords = file.create_dataset(
                "coords", shape=(0, 2), maxshape=(None, 2), dtype="int64", chunks=(4096, 2)
            )
            for key, value in coords_attrs.items():
                coords.attrs[key] = value
            for key, value in attrs.items():
                if value is not None:  # unknown metadata is absent, as readers expect
                    file.attrs[key] = _attr(value)
            file.attrs["format_version"] = FORMAT_VERSION
            file.attrs["complete"] = False
            file.attrs[SETTINGS_ATTR] = _canonical(settings)
            file.flush()
        except BaseException:
            file.close()
            raise
        return cls(file, path)

    @property
    def count(self) -> int:
        """Patches written so far."""
        return int(self._coords.shape[0])

    def written_coords(self) -> np.ndarray:
        """``(n, 2)`` coords already in the file."""
        return np.asarray(self._coords[:], dtype=np.int64)

    def append(self, coords: np.ndarray, features: np.ndarray) -> None:
        """Add one batch and flush it to disk."""
        coords = np.asarray(coords, dtype=np.int64).reshape(-1, 2)
        features = np.asarray(features, dtype=np.float32)
        if features.shape != (len(coords), self._features.shape[1]):
            raise ValueError(
                f"features {features.shape} do not fit {len(coords)} coords of dim "
                f"{self._features.shape[1]}"
            )
        n, m = self.count, len(coords)
        if m == 0:
            return
        self._features.resize(n + m, axis=0)
        self._features[n:] = features
        self._coords.resize(n + m, axis=0)
        self._coords[n:] = coords
        self._file.flush()

    def finish(self) -> Path:
        """Mark the file complete, close it and move it to its final name."""
        self._file.attrs["complete"] = True
        self._file.flush()
        self._file.close()
        os.replace(partial_path(self.path), self.path)
        return self.path

    def close(self) -> None:
        """Close without finishing (the partial file stays for a resume)."""
        if self._file.id.valid:
            self._file.close()


def _canonical(settings: dict[str, Any]) -> str:
    return json.dumps(settings, sort_keys=True, default=str)


def _settings_of(file: h5py.File) -> str | None:
    value = file.attrs.get(SETTINGS_ATTR)
    if isinstance(value, bytes):
        value = value.decode()
    return None if value is None else str(value)


def _attr(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return np.asarray(value, dtype=float)
    return value
