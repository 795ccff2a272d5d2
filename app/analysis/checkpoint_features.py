"""The features a checkpoint reads for one slide: from a folder, the cache, or extracted.

The same places :func:`~slidescope.app.analysis.inference.analyze_slide` looks, so that a
slide analysed in the window is never extracted again for fine-tuning (and back).
"""

from __future__ import annotations

from pathlib import Path

from slidescope.app.analysis.extract import ExtractConfig, extract_features, tissue_fingerprint
from slidescope.app.analysis.feature_writer import is_up_to_date
from slidescope.app.jobs import Job
from slidescope.app.slides.slide import SlideIdentity
from slidescope.models.checkpoints import CheckpointMeta, check_compatible
from slidescope.models.errors import FeatureFileError
from slidescope.models.features import read_feature_info


def cache_folder(cache_dir: Path, meta: CheckpointMeta) -> Path:
    """The analysis cache's feature folder for the checkpoint's extractor and geometry."""
    return Path(cache_dir) / "features" / geometry_name(_extract_config(meta, "auto", None))


def _extract_config(meta: CheckpointMeta, device: str, slide_mpp: float | None) -> ExtractConfig:
    return ExtractConfig(
        extractor=meta.extractor or "builtin",
        target_mpp=meta.target_mpp or 0.5,
        patch_px=meta.patch_size or 256,
        device=device,
        slide_mpp=slide_mpp,
    )


def check_given_features(folder: Path | None, slide_id: str, meta: CheckpointMeta) -> None:
    """Refuse a feature file the user pointed at that another extractor wrote."""
    if folder is None:
        return
    path = Path(folder) / f"{slide_id}.h5"
    if path.is_file():
        info = read_feature_info(path)
        check_compatible(meta, info.extractor, info.feature_dim, str(path))


def features_for(
    slide_path: Path,
    identity: SlideIdentity,
    meta: CheckpointMeta,
    cache_dir: Path,
    features_dir: Path | None = None,
    device: str = "auto",
    slide_mpp: float | None = None,
) -> Job[Path]:
    """The slide's feature file for ``meta``: found, or extracted into the cache."""
    found = fitting_features(features_dir, identity, meta) or fitting_features(
        cache_folder(cache_dir, meta), identity, meta
    )
    if found is not None:
        return found
    config = _extract_config(meta, device, slide_mpp)
    return (yield from extract_features(slide_path, cache_folder(cache_dir, meta), config))


def identity_of_features(path: Path) -> SlideIdentity:
    """The identity of the slide a feature file was extracted from (its attributes)."""
    import h5py

    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
    except OSError as error:
        raise FeatureFileError(f"{path}: not a readable feature file ({error})") from None

    def text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    mpp = attrs.get("slide_mpp")
    return SlideIdentity(
        slide_id=text(attrs.get("slide_id", Path(path).stem)),
        fingerprint=text(attrs.get("slide_fingerprint", "")),
        width=int(attrs.get("slide_width", 0)),
        height=int(attrs.get("slide_height", 0)),
        mpp=(float(mpp[0]), float(mpp[1])) if mpp is not None else None,
    )


def fitting_features(
    folder: str | Path | None, identity: SlideIdentity, meta: CheckpointMeta
) -> Path | None:
    """``folder/<slide_id>.h5`` when it is complete, of this slide, and fits the checkpoint."""
    if folder is None:
        return None
    path = Path(folder) / f"{identity.slide_id}.h5"
    needed = {
        "slide_fingerprint": identity.fingerprint,
        "extractor": meta.extractor,
        "patch_size": meta.patch_size,
        "target_mpp": None if meta.target_mpp is None else float(meta.target_mpp),
    }
    return path if is_up_to_date(path, attrs=needed) else None


def geometry_name(config: ExtractConfig) -> str:
    """The cache folder of one extraction: extractor, patch size, µm/px and tissue rule."""
    return (
        f"{config.extractor}-{config.patch_px}px-{config.target_mpp:g}mpp"
        f"-t{tissue_fingerprint(config)}"
    )
