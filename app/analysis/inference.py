"""The inference job: slide + checkpoint -> prediction and per-patch scores, cached.

``analyze_slide`` runs slide -> tissue -> patches -> features -> MIL model -> hard instances
(:mod:`~slidescope.app.analysis.hard_instances`) and returns a
:class:`~slidescope.app.analysis.slide_analysis.SlideAnalysis`. Each stage reuses what is
already on disk:

- results, per slide fingerprint x checkpoint hash x hard-instance setting, in
  ``<cache_dir>/results`` (:mod:`~slidescope.app.analysis.results_cache`): reopening a slide
  shows them at once, without reading a pixel;
- features whose extractor and patch geometry (``extractor``, ``patch_size``,
  ``target_mpp``) are the checkpoint's and whose slide fingerprint is this slide's, in a
  ``features_dir`` the caller names (e.g. a project's) or in
  ``<cache_dir>/features/<extractor>-<px>px-<mpp>mpp``; otherwise the extraction job writes
  them there.

It runs on the GPU when there is one (``device="auto"``).
"""

from __future__ import annotations

import warnings
from collections.abc import Generator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from slidescope.app.analysis.extract import (
    EmptyBagWarning,
    ExtractConfig,
    extract_features,
    resolve_device,
)
from slidescope.app.analysis.hard_instances import hard_instances
from slidescope.app.analysis.results_cache import file_sha256, load_result, result_key, save_result
from slidescope.app.analysis.slide_analysis import SlideAnalysis, empty_analysis
from slidescope.app.errors import SlideScopeError
from slidescope.app.jobs import Job, Progress, sub_job
from slidescope.app.slides import open_slide
from slidescope.app.slides.slide import SlideIdentity
from slidescope.models.checkpoints import (
    CheckpointMeta,
    check_compatible,
    load_checkpoint,
    read_meta,
)
from slidescope.models.errors import ModelError
from slidescope.models.features import read_coords, read_feature_info, read_features

__all__ = ["DEFAULT_MASK_RATIO", "NoTeacherError", "SlideAnalysis", "analyze_slide"]

#: r_h for checkpoints trained without MHIM (they record no ``mask_ratio_high``)
DEFAULT_MASK_RATIO = 0.1


class NoTeacherError(SlideScopeError):
    """The teacher was asked to score the patches, but the checkpoint holds none."""


def analyze_slide(
    slide_path: str | Path,
    checkpoint: str | Path,
    cache_dir: str | Path,
    *,
    device: str = "auto",
    mask_ratio: float | None = None,
    slide_mpp: float | None = None,
    use_teacher: bool = False,
    features_dir: str | Path | None = None,
) -> Job[SlideAnalysis]:
    """Analyse one slide with one checkpoint (a job: yields Progress, returns the result).

    Parameters
    ----------
    slide_path : path
        The slide.
    checkpoint : path
        A ``.safetensors`` checkpoint of any registry model.
    cache_dir : path
        Where results (and features extracted on the way) are kept.
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``.
    mask_ratio : float, optional
        ``r_h`` of the hard-instance view; the checkpoint's ``training.mask_ratio_high`` by
        default (:data:`DEFAULT_MASK_RATIO` when it has none).
    slide_mpp : float, optional
        Level-0 µm/px for a slide that does not say it.
    use_teacher : bool
        Let the saved MHIM teacher choose the salient set instead of the model.
    features_dir : path, optional
        A folder of ``<slide_id>.h5`` feature files to reuse when they fit the checkpoint.

    Returns
    -------
    SlideAnalysis
        With ``status == "no tissue"`` and no patches when the slide has no tissue.

    Raises
    ------
    SlideError, MissingMppError, CheckpointError, NoTeacherError
        With a message that names the file and what to do.
    """
    yield Progress(0, None, "opening the slide")
    with open_slide(slide_path, mpp=slide_mpp) as slide:
        identity = slide.identity
    meta = read_meta(checkpoint)
    checkpoint_hash = file_sha256(checkpoint)
    ratio = float(
        mask_ratio
        if mask_ratio is not None
        else meta.training.get("mask_ratio_high", DEFAULT_MASK_RATIO)
    )
    source = "teacher" if use_teacher else "student"
    key = result_key(identity, checkpoint_hash, ratio, source)
    cached = load_result(cache_dir, key)
    if cached is not None:
        yield Progress(1, 1, f"{identity.slide_id}: results from the cache")
        cached.checkpoint_path = str(checkpoint)
        return cached

    features_path = _fitting_features(features_dir, identity, meta)
    if features_path is None:
        config = ExtractConfig(
            extractor=meta.extractor or "builtin",
            target_mpp=meta.target_mpp or 0.5,
            patch_px=meta.patch_size or 256,
            device=device,
            slide_mpp=slide_mpp,
        )
        folder = _extraction_folder(features_dir, cache_dir, identity, config)
        features_path = _fitting_features(folder, identity, meta)
        if features_path is None:
            features_path = yield from _without_empty_bag_warning(
                extract_features(slide_path, folder, config)
            )

    yield Progress(0, None, f"{identity.slide_id}: model")
    info = read_feature_info(features_path)
    check_compatible(meta, info.extractor, info.feature_dim, Path(features_path).name)
    coords = read_coords(features_path)
    if coords is None:
        raise SlideScopeError(f"{features_path}: no 'coords' dataset; extract the features again")
    score = "prob" if meta.training.get("mask_score") in ("prob", "cls_prob") else "attention"
    common = {
        "mask_ratio": ratio,
        "mask_score": score,
        "score_source": source,
        "checkpoint_path": str(checkpoint),
        "checkpoint_hash": checkpoint_hash,
        "extractor": str(info.extractor or meta.extractor or ""),
        "arch": meta.architecture,
    }
    class_names = list(meta.class_names) or [str(i) for i in range(meta.n_classes)]
    patch_size = int(info.patch_size_level0 or 0)
    if len(coords) == 0:
        analysis = empty_analysis(identity, class_names, patch_size, **common)
    else:
        analysis = _run_model(
            checkpoint, device, read_features(features_path), coords, identity, class_names,
            patch_size, use_teacher, common,
        )  # fmt: skip
    save_result(cache_dir, key, analysis)
    yield Progress(1, 1, f"{identity.slide_id}: done")
    return analysis


@torch.no_grad()
def _run_model(
    checkpoint: str | Path,
    device: str,
    features: np.ndarray,
    coords: np.ndarray,
    identity: SlideIdentity,
    class_names: list[str],
    patch_size: int,
    use_teacher: bool,
    common: dict[str, object],
) -> SlideAnalysis:
    torch_device = resolve_device(device)
    loaded = _loaded_checkpoint(checkpoint, str(torch_device), str(common["checkpoint_hash"]))
    if use_teacher and loaded.teacher is None:
        raise NoTeacherError(
            f"{Path(checkpoint).name}: holds no MHIM teacher (it was trained without MHIM); "
            "let the model score the patches instead"
        )
    model = loaded.model.eval()
    x = torch.from_numpy(features).to(torch_device)
    output = model(x)
    scorer = loaded.teacher if use_teacher else None
    hard = hard_instances(
        model,
        x,
        float(common["mask_ratio"]),  # type: ignore[arg-type]
        score=str(common["mask_score"]),
        scorer=scorer,
        output=None if use_teacher else output,
    )
    return SlideAnalysis(
        identity=identity,
        coords=coords.astype(np.int64),
        patch_size_level0=patch_size,
        class_names=class_names,
        probabilities=torch.softmax(output.logits.float(), dim=-1).cpu().numpy(),
        attention=output.attention.float().cpu().numpy(),
        instance_probs=output.instance_probs.float().cpu().numpy(),
        masked=hard.masked,
        hard_attention=hard.hard_attention,
        mask_scores=hard.scores,
        **common,  # type: ignore[arg-type]
    )


def _fitting_features(
    folder: str | Path | None, identity: SlideIdentity, meta: CheckpointMeta
) -> Path | None:
    """``folder/<slide_id>.h5`` when it is complete, of this slide, and fits the checkpoint."""
    if folder is None:
        return None
    path = Path(folder) / f"{identity.slide_id}.h5"
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as handle:
            attrs = dict(handle.attrs)
    except OSError:
        return None

    def same(name: str, expected: object) -> bool:
        value = attrs.get(name)
        if isinstance(value, bytes):
            value = value.decode()
        if expected is None:
            return True
        if isinstance(expected, float):
            return value is not None and abs(float(value) - expected) < 1e-6
        return value is not None and str(value) == str(expected)

    fits = (
        bool(attrs.get("complete", False))
        and same("slide_fingerprint", identity.fingerprint)
        and same("extractor", meta.extractor)
        and same("patch_size", meta.patch_size)
        and same("target_mpp", None if meta.target_mpp is None else float(meta.target_mpp))
    )
    return path if fits else None


#: checkpoints already loaded by this process (a batch worker loads each one once)
_LOADED: dict[tuple[str, int, int, str, str], Any] = {}


def _loaded_checkpoint(checkpoint: str | Path, device: str, sha256: str) -> Any:
    """``load_checkpoint`` once per process, keyed by path, size, mtime, content and device."""
    path = Path(checkpoint).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns, sha256, device)
    if key not in _LOADED:
        if len(_LOADED) >= 2:  # a batch uses one checkpoint; keep memory bounded anyway
            _LOADED.clear()
        _LOADED[key] = load_checkpoint(checkpoint, device=device)
    return _LOADED[key]


def _extraction_folder(
    features_dir: str | Path | None,
    cache_dir: str | Path,
    identity: SlideIdentity,
    config: ExtractConfig,
) -> Path:
    """Where missing features are extracted: the caller's folder when it names one.

    A file of this slide already there that does not fit the checkpoint (another extractor
    or geometry) is the user's and is kept: the new features go to a sub-folder named by
    the geometry instead.
    """
    if features_dir is None:
        return Path(cache_dir) / "features" / _geometry_name(config)
    folder = Path(features_dir)
    if (folder / f"{identity.slide_id}.h5").exists():
        return folder / _geometry_name(config)
    return folder


def _geometry_name(config: ExtractConfig) -> str:
    return f"{config.extractor}-{config.patch_px}px-{config.target_mpp:g}mpp"


def _without_empty_bag_warning(job: Job[Path]) -> Generator[Progress, None, Path]:
    """Forward ``job``; a slide without tissue is a result here ("no tissue"), not a warning."""
    try:
        while True:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", EmptyBagWarning)
                try:
                    step = next(job)
                except StopIteration as stop:
                    return stop.value  # type: ignore[no-any-return]
            yield step
    finally:
        job.close()


def analyze_slides(
    paths: list[Path], checkpoint: str | Path, cache_dir: str | Path, **options: Any
) -> Job[dict[Path, SlideAnalysis | str]]:
    """Analyse several slides in turn; a slide that fails is recorded and the others go on.

    Returns
    -------
    dict
        Per path, its :class:`SlideAnalysis`, or the error message when it failed.
    """
    results: dict[Path, SlideAnalysis | str] = {}
    for i, path in enumerate(paths):
        job = analyze_slide(path, checkpoint, cache_dir, **options)
        try:
            results[path] = yield from sub_job(job, i, len(paths), f"{Path(path).name}: ")
        except (SlideScopeError, ModelError) as error:
            results[path] = str(error)
    yield Progress(len(paths), len(paths), "done")
    return results
