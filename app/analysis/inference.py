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

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from slidescope.app.analysis.checkpoint_features import cache_folder, features_for
from slidescope.app.analysis.hard_instances import hard_instances
from slidescope.app.analysis.results_cache import file_sha256, load_result, result_key, save_result
from slidescope.app.analysis.slide_analysis import SlideAnalysis, empty_analysis
from slidescope.app.analysis.trust import assess_trust
from slidescope.app.errors import SlideScopeError
from slidescope.app.jobs import Job, Progress, sub_job
from slidescope.app.slides import open_slide
from slidescope.app.slides.slide import SlideIdentity
from slidescope.models.checkpoints import (
    check_compatible,
    load_checkpoint,
    read_meta,
)
from slidescope.models.devices import DeviceMemoryError, allocation_of, resolve_device
from slidescope.models.errors import ModelError
from slidescope.models.features import read_coords, read_feature_info, read_features

__all__ = ["DEFAULT_MASK_RATIO", "NoTeacherError", "SlideAnalysis", "analyze_slide"]

#: r_h for checkpoints trained without MHIM (they record no ``mask_ratio_high``)
DEFAULT_MASK_RATIO = 0.1


class NoTeacherError(SlideScopeError):
    """The teacher was asked to score the patches, but the checkpoint holds none."""


@dataclass(frozen=True)
class _ResultSettings:
    """What every result of one slide x checkpoint carries besides its arrays."""

    mask_ratio: float
    mask_score: str
    score_source: str
    checkpoint_path: str
    checkpoint_hash: str
    extractor: str
    arch: str
    decision_threshold: float | None


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
        scan_mpp = float(slide.mpp[0]) if slide.mpp else None
    meta = read_meta(checkpoint)
    checkpoint_hash = file_sha256(checkpoint)
    ratio = float(
        mask_ratio
        if mask_ratio is not None
        else meta.training.get("mask_ratio_high", DEFAULT_MASK_RATIO)
    )
    source = "teacher" if use_teacher else "student"
    key = result_key(
        identity, checkpoint_hash, ratio, source, cache_folder(Path(cache_dir), meta).name
    )
    cached = load_result(cache_dir, key)
    if cached is not None:
        yield Progress(1, 1, f"{identity.slide_id}: results from the cache")
        cached.checkpoint_path = str(checkpoint)
        if cached.trust is None or cached.trust.distance is None:
            # no feature verdict was cached: the scale check (cheap) follows the current rules
            cached.trust = assess_trust(None, meta, scan_mpp)
        return cached

    # a slide without tissue gives an empty bag: the result says "no tissue"
    features_path = yield from features_for(
        Path(slide_path), identity, meta, Path(cache_dir),
        None if features_dir is None else Path(features_dir), device, slide_mpp,
    )  # fmt: skip

    yield Progress(0, None, f"{identity.slide_id}: model")
    info = read_feature_info(features_path)
    check_compatible(meta, info.extractor, info.feature_dim, Path(features_path).name)
    coords = read_coords(features_path)
    if coords is None:
        raise SlideScopeError(f"{features_path}: no 'coords' dataset; extract the features again")
    score = "prob" if meta.training.get("mask_score") in ("prob", "cls_prob") else "attention"
    settings = _ResultSettings(
        mask_ratio=ratio,
        mask_score=score,
        score_source=source,
        checkpoint_path=str(checkpoint),
        checkpoint_hash=checkpoint_hash,
        extractor=str(info.extractor or meta.extractor or ""),
        arch=meta.architecture,
        decision_threshold=meta.threshold,
    )
    class_names = list(meta.class_names) or [str(i) for i in range(meta.n_classes)]
    patch_size = int(info.patch_size_level0 or 0)
    if len(coords) == 0:
        analysis = empty_analysis(identity, class_names, patch_size, **asdict(settings))
        analysis.trust = assess_trust(None, meta, scan_mpp)
    else:
        features = read_features(features_path)
        run = (features, coords, identity, class_names, patch_size, use_teacher, settings)
        short_of_memory = False
        try:
            analysis = _run_model(checkpoint, device, *run)
        except torch.OutOfMemoryError as error:
            short_of_memory = True
            if device != "auto":
                raise DeviceMemoryError(
                    f"{slide_path}: the GPU ran out of memory running {meta.architecture} on "
                    f"the slide's {len(coords)} patches ({allocation_of(error)}); analyse it "
                    "with --device cpu"
                ) from None
        if short_of_memory:  # "auto", and this bag is too large for the GPU: the CPU has room
            torch.cuda.empty_cache()
            yield Progress(
                0, None, f"{identity.slide_id}: GPU memory short for {len(coords)} patches: "
                "the model runs on the CPU",
            )  # fmt: skip
            analysis = _run_model(checkpoint, "cpu", *run)
        analysis.trust = assess_trust(features, meta, scan_mpp)
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
    settings: _ResultSettings,
) -> SlideAnalysis:
    torch_device = resolve_device(device)
    loaded = _loaded_checkpoint(checkpoint, str(torch_device), settings.checkpoint_hash)
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
        settings.mask_ratio,
        score=settings.mask_score,
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
        **asdict(settings),
    )


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
