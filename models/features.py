"""Patch features on disk: one HDF5 file per slide, streamed into training as bags.

A feature file holds ``features`` (N, D) float32 and ``coords`` (N, 2) level-0 (x, y),
with the slide's identity and patch geometry in its attributes (see DESIGN.md). Files
written by CLAM or TRIDENT, which carry only ``features`` and ``coords``, are read as
they are: their missing metadata becomes None.

Training on 1,000 slides x 20,000 patches x 1,024 floats (80 GB) cannot hold every bag
in memory, so :class:`FeatureBags` reads bags from disk on demand and keeps the most
recently used ones in a cache bounded in bytes (:class:`BagCache`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from slidescope.models.errors import FeatureFileError

#: rows read at once when a whole file is streamed for statistics
_STREAM_ROWS = 65_536


@dataclass(frozen=True)
class FeatureFileInfo:
    """What a feature file says about itself, without reading its features.

    Attributes left None were not recorded in the file (CLAM/TRIDENT files).
    """

    path: Path
    slide_id: str
    n_instances: int
    feature_dim: int
    extractor: str | None = None
    patch_size: int | None = None
    patch_size_level0: int | None = None
    target_mpp: float | None = None
    complete: bool | None = None
    format_version: int | None = None

    @property
    def n_bytes(self) -> int:
        """Size of the bag in memory as float32."""
        return self.n_instances * self.feature_dim * 4


def _attr(attrs: Any, name: str) -> Any:
    if name not in attrs:
        return None
    value = attrs[name]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _features_dataset(handle: h5py.File, path: Path) -> h5py.Dataset:
    dataset = handle.get("features")
    if not isinstance(dataset, h5py.Dataset):
        raise FeatureFileError(
            f"{path}: no 'features' dataset; is this a SlideScope/CLAM/TRIDENT feature file?"
        )
    # CLAM's .pt-converted files sometimes keep a leading batch axis of 1, and a
    # converter from .mat/.csv may write a one-instance bag as a plain (D,) vector.
    if (dataset.ndim == 3 and dataset.shape[0] == 1) or dataset.ndim == 1:
        return dataset
    if dataset.ndim != 2:
        raise FeatureFileError(
            f"{path}: 'features' has shape {dataset.shape}; expected (patches, feature_dim)"
        )
    return dataset


def _bag_shape(dataset: h5py.Dataset) -> tuple[int, int]:
    """(instances, feature_dim) of a ``features`` dataset accepted by _features_dataset."""
    if dataset.ndim == 1:
        return 1, int(dataset.shape[0])
    return int(dataset.shape[-2]), int(dataset.shape[-1])


def _read_rows(dataset: h5py.Dataset, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a bag as a 2-D array, whatever the dataset's layout."""
    if dataset.ndim == 1:
        return np.asarray(dataset[()])[None, :][start:stop]
    if dataset.ndim == 3:
        return np.asarray(dataset[0, start:stop])
    return np.asarray(dataset[start:stop])


def _require_finite(array: np.ndarray, path: Path) -> None:
    # A NaN or inf (a gap in a converted table, a failed patch) would silently turn the
    # input standardisation and every prediction into NaN.
    if not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array).all(axis=-1)))
        raise FeatureFileError(
            f"{path}: {bad} patch(es) have NaN or infinite feature values; fix or drop "
            "them (re-run the extraction or the conversion) before training or inference"
        )


def read_feature_info(path: str | Path) -> FeatureFileInfo:
    """Read the metadata of one feature file.

    Parameters
    ----------
    path : str or Path
        An HDF5 feature file.

    Returns
    -------
    FeatureFileInfo

    Raises
    ------
    FeatureFileError
        When the file cannot be opened or has no 2-D ``features`` dataset.
    """
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            dataset = _features_dataset(handle, path)
            shape = _bag_shape(dataset)
            attrs = handle.attrs
            coords = handle.get("coords")
            coord_attrs = coords.attrs if isinstance(coords, h5py.Dataset) else {}
            patch_level0 = _attr(attrs, "patch_size_level0")
            if patch_level0 is None:
                patch_level0 = _attr(coord_attrs, "patch_size")
            complete = _attr(attrs, "complete")
            return FeatureFileInfo(
                path=path,
                slide_id=str(_attr(attrs, "slide_id") or path.stem),
                n_instances=int(shape[0]),
                feature_dim=int(shape[1]),
                extractor=_attr(attrs, "extractor"),
                patch_size=_int_or_none(_attr(attrs, "patch_size")),
                patch_size_level0=_int_or_none(patch_level0),
                target_mpp=_float_or_none(_attr(attrs, "target_mpp")),
                complete=None if complete is None else bool(complete),
                format_version=_int_or_none(_attr(attrs, "format_version")),
            )
    except OSError as error:
        raise FeatureFileError(f"{path}: cannot be read as HDF5 ({error})") from error


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def read_features(path: str | Path) -> np.ndarray:
    """Read the (N, D) float32 features of one file."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as handle:
            dataset = _features_dataset(handle, path)
            array = _read_rows(dataset, 0, _bag_shape(dataset)[0])
    except OSError as error:
        raise FeatureFileError(f"{path}: cannot be read as HDF5 ({error})") from error
    array = np.ascontiguousarray(array, dtype=np.float32)
    _require_finite(array, path)
    return array


def read_coords(path: str | Path) -> np.ndarray | None:
    """Read the (N, 2) int64 level-0 (x, y) patch corners, or None without ``coords``."""
    path = Path(path)
    with h5py.File(path, "r") as handle:
        coords = handle.get("coords")
        if not isinstance(coords, h5py.Dataset):
            return None
        array = np.asarray(coords[()])
    return array.reshape(-1, 2).astype(np.int64)


def find_feature_files(
    directory: str | Path, slide_ids: Iterable[str], skip_missing: bool = False
) -> tuple[dict[str, Path], list[str]]:
    """Locate ``<slide_id>.h5`` for every slide id.

    Parameters
    ----------
    directory : str or Path
        The folder of feature files.
    slide_ids : iterable of str
        The slides wanted.
    skip_missing : bool
        When False, a missing file is an error listing every missing slide; when True,
        missing slides are returned for the caller to warn about.

    Returns
    -------
    found : dict
        slide id -> path.
    missing : list of str
        Slide ids without a file (empty unless ``skip_missing``).
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise FeatureFileError(f"{directory}: the feature folder does not exist")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for slide_id in slide_ids:
        path = directory / f"{slide_id}.h5"
        if path.is_file():
            found[slide_id] = path
        else:
            missing.append(slide_id)
    if missing and not skip_missing:
        shown = ", ".join(missing[:20]) + (
            f" and {len(missing) - 20} more" if len(missing) > 20 else ""
        )
        raise FeatureFileError(
            f"{directory}: no feature file for {len(missing)} slide(s) of the labels: {shown}; "
            "extract their features first, or pass --skip-missing to leave them out"
        )
    return found, missing


def check_feature_set(infos: Sequence[FeatureFileInfo]) -> FeatureFileInfo:
    """Check that files can be trained on together and return the first as the reference.

    Every file must be complete, hold patches and share the extractor and feature dimension.

    Raises
    ------
    FeatureFileError
        Naming the incomplete files, or the differing extractors or dimensions.
    """
    if not infos:
        raise FeatureFileError("no feature files to train on")
    incomplete = [str(info.path) for info in infos if info.complete is False]
    if incomplete:
        raise FeatureFileError(
            "these feature files are incomplete (extraction was interrupted or is still "
            f"running): {', '.join(incomplete[:10])}; finish or re-run the extraction"
        )
    empty = [str(info.path) for info in infos if info.n_instances == 0]
    if empty:
        # a bag without instances has no prediction (a slide without tissue)
        raise FeatureFileError(
            f"feature files without patches: {', '.join(empty[:10])}; remove these slides "
            "from the labels"
        )
    extractors = sorted({str(info.extractor) for info in infos})
    dims = sorted({info.feature_dim for info in infos})
    if len(extractors) > 1 or len(dims) > 1:
        groups: dict[tuple[str, int], list[str]] = {}
        for info in infos:
            groups.setdefault((str(info.extractor), info.feature_dim), []).append(info.slide_id)
        described = "; ".join(
            f"extractor {ex!r} dim {dim}: {len(ids)} slide(s), e.g. {ids[0]}"
            for (ex, dim), ids in sorted(groups.items())
        )
        raise FeatureFileError(
            f"the feature files mix extractors or feature dimensions ({described}); "
            "a model is trained on features of one extractor only"
        )
    return infos[0]


class BagCache:
    """A least-recently-used cache of bags, bounded by the bytes it holds.

    Parameters
    ----------
    max_bytes : int
        The budget. A bag larger than the whole budget is never stored.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self.n_bytes = 0
        self._items: OrderedDict[Any, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Any) -> bool:
        return key in self._items

    def get(self, key: Any) -> np.ndarray | None:
        """The cached array, marked as most recently used, or None."""
        array = self._items.get(key)
        if array is not None:
            self._items.move_to_end(key)
        return array

    def put(self, key: Any, array: np.ndarray) -> None:
        """Store ``array``, evicting the least recently used bags to stay in budget."""
        if key in self._items:
            self.n_bytes -= self._items.pop(key).nbytes
        if array.nbytes > self.max_bytes:
            return
        while self._items and self.n_bytes + array.nbytes > self.max_bytes:
            _, evicted = self._items.popitem(last=False)
            self.n_bytes -= evicted.nbytes
        self._items[key] = array
        self.n_bytes += array.nbytes


class FeatureBags:
    """Bags of patch features read from disk on demand, through a bounded cache.

    Parameters
    ----------
    paths : sequence of Path
        One feature file per bag, in the order of the bags.
    cache_bytes : int
        The memory budget of the cache (default 2 GiB).
    """

    def __init__(self, paths: Sequence[str | Path], cache_bytes: int = 2 * 1024**3) -> None:
        self.paths = [Path(p) for p in paths]
        self.cache = BagCache(cache_bytes)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        array = self.cache.get(index)
        if array is None:
            array = read_features(self.paths[index])
            self.cache.put(index, array)
        # from_numpy shares memory; models never write into their input.
        return torch.from_numpy(array)


class FeatureMoments:
    """Running per-feature mean and standard deviation over streamed files.

    Sums are accumulated in float64 around a shift (the first row seen), which avoids the
    cancellation of plain sum / sum-of-squares when features have a large mean relative
    to their spread.
    """

    def __init__(self) -> None:
        self.count = 0
        self._shift: np.ndarray | None = None
        self._total: np.ndarray | None = None
        self._total_sq: np.ndarray | None = None

    def add_file(self, path: str | Path) -> None:
        """Add every instance of one feature file, read in blocks."""
        path = Path(path)
        with h5py.File(path, "r") as handle:
            dataset = _features_dataset(handle, path)
            rows = _bag_shape(dataset)[0]
            for start in range(0, rows, _STREAM_ROWS):
                block = _read_rows(dataset, start, min(rows, start + _STREAM_ROWS))
                _require_finite(block, path)
                self.add(block)

    def add(self, block: np.ndarray) -> None:
        """Add a (n, D) block of instances."""
        block = np.asarray(block, dtype=np.float64)
        if block.shape[0] == 0:
            return
        if self._shift is None:
            self._shift = block[0].copy()
            self._total = np.zeros_like(self._shift)
            self._total_sq = np.zeros_like(self._shift)
        centred = block - self._shift
        self._total += centred.sum(axis=0)
        self._total_sq += np.square(centred).sum(axis=0)
        self.count += block.shape[0]

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean, std) as float32 (D,) arrays; std is the population standard deviation."""
        if self.count == 0 or self._shift is None:
            raise FeatureFileError("the training feature files hold no patches")
        mean_centred = self._total / self.count  # type: ignore[operator]
        variance = np.maximum(self._total_sq / self.count - np.square(mean_centred), 0.0)  # type: ignore[operator]
        return (self._shift + mean_centred).astype(np.float32), np.sqrt(variance).astype(
            np.float32
        )


def feature_statistics(paths: Iterable[str | Path]) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and standard deviation over every instance of the files.

    Streams each file in blocks (see :class:`FeatureMoments`), so the whole set is never
    in memory.

    Returns
    -------
    mean, std : ndarray
        float32 arrays of shape (D,); std is the population standard deviation.
    """
    moments = FeatureMoments()
    for path in paths:
        moments.add_file(path)
    return moments.result()
