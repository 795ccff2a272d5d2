"""Analysis results kept per slide and checkpoint, so reopening a slide shows them at once.

A result is two files in ``<cache_dir>/results/``: ``<key>.npz`` (the per-patch arrays) and
``<key>.json`` (everything else). Both are written beside and renamed; the JSON goes last,
so its presence means the result is whole. The key joins the slide's id and fingerprint,
the checkpoint's SHA-256, the hard-instance settings and the feature cache's name: a changed
slide file, a retrained checkpoint, another mask ratio or a new tissue rule never returns a
stale result.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.app.slides.slide import SlideIdentity
from slidescope.models.files import atomic_path, write_text_atomic

_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (remembered per path, size and modification time)."""
    path = Path(path)
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _HASHES:
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        _HASHES[memo_key] = digest.hexdigest()
    return _HASHES[memo_key]


def result_key(
    identity: SlideIdentity,
    checkpoint_hash: str,
    mask_ratio: float,
    score_source: str = "student",
    features: str = "",
) -> str:
    """The file stem of one slide x checkpoint x hard-instance setting x feature cache.

    ``features``: the name of the feature cache folder the result was computed from
    (extractor, geometry and tissue rule), so a changed tissue rule is a new result.
    """
    return (
        f"{identity.slide_id}-{identity.fingerprint}-{checkpoint_hash[:16]}"
        f"-r{mask_ratio:.4f}-{score_source}{f'-{features}' if features else ''}"
    )


def result_paths(cache_dir: str | Path, key: str) -> tuple[Path, Path]:
    """(arrays ``.npz``, metadata ``.json``) of a key."""
    folder = Path(cache_dir) / "results"
    return folder / f"{key}.npz", folder / f"{key}.json"


def save_result(cache_dir: str | Path, key: str, analysis: SlideAnalysis) -> Path:
    """Store ``analysis`` under ``key``, atomically; returns the JSON's path."""
    npz_path, json_path = result_paths(cache_dir, key)
    npz_path.parent.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, Any] = analysis.arrays()
    with atomic_path(npz_path) as temp, temp.open("wb") as handle:
        np.savez(handle, **arrays)
    return write_text_atomic(json_path, json.dumps(analysis.metadata(), indent=1))


def load_result(cache_dir: str | Path, key: str) -> SlideAnalysis | None:
    """The stored result of ``key``, or None when there is none (or it is unreadable)."""
    npz_path, json_path = result_paths(cache_dir, key)
    if not json_path.is_file() or not npz_path.is_file():
        return None
    try:
        meta = json.loads(json_path.read_text())
        with np.load(npz_path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
        return SlideAnalysis.from_stored(meta, arrays)
    except (OSError, ValueError, KeyError, TypeError):
        # a damaged cache entry is recomputed, never trusted
        return None
