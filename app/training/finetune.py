"""The fine-tuning job: a base checkpoint, slides with labels and/or region annotations,
settings -> a new model version (Qt-free; the window, the CLI and scripts wrap it).

``prepare_finetune`` checks everything a run needs before anything is computed or written
(labels, classes, annotations, extractor, validation share) and raises one
:class:`FinetuneInputError` listing every problem. ``finetune`` then finds or extracts the
features with the base's extractor and patch geometry (in the same cache the analysis
uses), turns annotations into patch labels (:mod:`patch_labels`) and runs the models-side
job (:func:`slidescope.models.training.finetune.finetune_model`), which writes the new
checkpoint with its lineage and can resume after a kill.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from slidescope.app.analysis.checkpoint_features import (
    check_given_features,
    features_for,
    identity_of_features,
)
from slidescope.app.analysis.results_cache import file_sha256
from slidescope.app.errors import SlideScopeError
from slidescope.app.jobs import Job, Progress, sub_job
from slidescope.app.slides import open_slide
from slidescope.app.slides.slide import SlideIdentity
from slidescope.app.training.annotation_input import load_regions
from slidescope.app.training.patch_labels import (
    LABEL_RULE,
    LABELS_ONLY_CAUTION,
    PATCH_RULE,
    AnnotationLabelError,
    PatchLabels,
    Region,
    derive_label,
    is_ignore,
    label_patches,
    map_classes,
    region_classes,
)
from slidescope.models.checkpoints import CheckpointMeta, check_compatible, read_meta
from slidescope.models.devices import DeviceMemoryError, allocation_of
from slidescope.models.errors import ModelError
from slidescope.models.features import read_coords, read_feature_info
from slidescope.models.training.finetune import FinetuneBag, FinetuneResult, finetune_model
from slidescope.models.training.finetune_settings import (
    VALIDATION_RULE,
    FinetuneSettings,
    split_validation,
)


class FinetuneInputError(SlideScopeError):
    """The slides, labels, annotations or base cannot be fine-tuned on (nothing was written)."""


@dataclass
class TrainingSlide:
    """A slide offered for fine-tuning.

    Attributes
    ----------
    path : Path or None
        The slide file (None: ``features`` stand for the slide).
    label : str or None
        Its class; None: derived from its annotations (:data:`LABEL_RULE`).
    annotations : Path or None
        Its region annotations (GeoJSON, level-0 px).
    features : Path or None
        Its feature file, when given rather than found or extracted (its attributes then
        tell the slide's identity).
    """

    path: Path | None
    label: str | None = None
    annotations: Path | None = None
    features: Path | None = None

    @property
    def name(self) -> str:
        return Path(self.path or self.features or "?").name


@dataclass
class FinetuneRequest:
    """Everything a fine-tuning run is asked to do.

    Attributes
    ----------
    base : Path
        The checkpoint to start from (never written).
    slides : list of TrainingSlide
        The slides to learn from.
    out : Path
        The new checkpoint (``.safetensors``; must not exist yet).
    cache_dir : Path
        The analysis cache (features are found or extracted there).
    settings : FinetuneSettings
        Method, epochs, instance-loss weight, validation.
    features_dir : Path, optional
        A folder of feature files to use when they fit the base.
    add_classes : list of str
        Classes the base does not have, added as new outputs.
    class_map : dict
        Annotation class -> model class (e.g. ``{"Tumor": "lesion"}``).
    outside_class : str, optional
        The class of patches outside every region of an annotated slide, and of every
        patch of a slide labelled with it.
    """

    base: Path
    slides: list[TrainingSlide]
    out: Path
    cache_dir: Path
    settings: FinetuneSettings = field(default_factory=FinetuneSettings)
    features_dir: Path | None = None
    add_classes: list[str] = field(default_factory=list)
    class_map: dict[str, str] = field(default_factory=dict)
    outside_class: str | None = None
    slide_mpp: float | None = None


@dataclass
class PreparedSlide:
    """A checked slide: its identity, label (and where it came from) and regions."""

    slide: TrainingSlide
    identity: SlideIdentity
    label: str
    label_source: str
    regions: list[Region]
    annotations_sha256: str | None


@dataclass
class FinetunePlan:
    """A checked request: the base's metadata, the output classes and the slides.

    ``cautions``: what the run can do but may do badly (said before it starts).
    """

    request: FinetuneRequest
    meta: CheckpointMeta
    class_names: list[str]
    slides: list[PreparedSlide]
    cautions: list[str] = field(default_factory=list)


@dataclass
class FinetuneOutcome:
    """A finished run: the models-side result and, per slide, its labelled patches."""

    result: FinetuneResult
    plan: FinetunePlan
    patch_counts: dict[str, dict[str, int]]


def prepare_finetune(request: FinetuneRequest) -> FinetunePlan:
    """Check a request; raise :class:`FinetuneInputError` listing every problem."""
    request.settings.validate()
    out, base = Path(request.out), Path(request.base)
    if out.suffix != ".safetensors":
        raise FinetuneInputError(f"{out}: a model version is a .safetensors file")
    if out.exists():
        what = "its base" if out.resolve() == base.resolve() else "an existing model"
        raise FinetuneInputError(
            f"{out}: already exists ({what}); a fine-tuned model is a new version: choose "
            "another name"
        )
    try:
        meta = read_meta(base)
    except ModelError as error:
        raise FinetuneInputError(str(error)) from None
    class_names = list(meta.class_names) or [str(i) for i in range(meta.n_classes)]
    problems: list[str] = []
    for name in request.add_classes:
        if name in class_names:
            problems.append(f"--add-class {name!r}: {base.name} already has that class")
        else:
            class_names.append(name)
    if request.outside_class is not None and request.outside_class not in class_names:
        problems.append(
            f"outside class {request.outside_class!r} is not one of the model's classes "
            f"({', '.join(class_names)})"
        )
    if not request.slides:
        problems.append("no slides were given")
    prepared: list[PreparedSlide] = []
    for slide in request.slides:
        try:
            prepared.append(_prepare_slide(slide, request, meta, class_names))
        except (SlideScopeError, ModelError) as error:
            problems.append(str(error))
    if not problems:
        labels = {p.label for p in prepared}
        if len(labels) < 2 and not any(p.regions for p in prepared):
            problems.append(
                f"every slide is labelled {next(iter(labels))!r}; fine-tuning on slide labels "
                "alone needs slides of at least two classes (or region annotations)"
            )
        try:
            split_validation(
                np.array([class_names.index(p.label) for p in prepared]), request.settings
            )
        except ModelError as error:
            problems.append(str(error))
    if problems:
        raise FinetuneInputError("; ".join(problems))
    cautions = [] if any(p.regions for p in prepared) else [LABELS_ONLY_CAUTION]
    return FinetunePlan(request, meta, class_names, prepared, cautions)


def _prepare_slide(
    slide: TrainingSlide, request: FinetuneRequest, meta: CheckpointMeta, class_names: list[str]
) -> PreparedSlide:
    name = slide.name
    if slide.path is not None:
        with open_slide(slide.path, mpp=request.slide_mpp) as opened:
            identity = opened.identity
    elif slide.features is not None:
        identity = identity_of_features(slide.features)
        info = read_feature_info(slide.features)
        check_compatible(meta, info.extractor, info.feature_dim, str(slide.features))
    else:
        raise FinetuneInputError("a training slide needs a slide file or a feature file")
    regions: list[Region] = []
    sha = None
    if slide.annotations is not None:
        regions, sha = load_regions(Path(slide.annotations), identity)
        regions = map_classes(regions, request.class_map)
        unknown = [c for c in region_classes(regions) if not is_ignore(c) and c not in class_names]
        if unknown:
            raise AnnotationLabelError(
                f"{slide.annotations}: regions of class(es) {', '.join(map(repr, unknown))}, "
                f"not among the model's classes ({', '.join(class_names)}); add with "
                f"--add-class NAME or map with --class-map NAME=CLASS"
            )
    if slide.label is not None:
        label = request.class_map.get(slide.label, slide.label)
        if label not in class_names:
            raise FinetuneInputError(
                f"{name}: label {label!r} is not one of the model's classes "
                f"({', '.join(class_names)}); add it as a new output with --add-class {label!r}"
            )
        source = "given"
    else:
        derived = derive_label(regions, class_names, request.outside_class)
        if derived is None and not regions:
            raise FinetuneInputError(
                f"{name}: neither a label nor annotations; label the slide or annotate it"
            )
        if derived is None:
            raise FinetuneInputError(
                f"{name}: no label, and its annotations do not give one unambiguously "
                f"(classes {', '.join(region_classes(regions))}); rule: {LABEL_RULE}"
            )
        label, source = derived, "from annotations"
    check_given_features(request.features_dir, identity.slide_id, meta)
    return PreparedSlide(slide, identity, label, source, regions, sha)


def finetune(request: FinetuneRequest, plan: FinetunePlan | None = None) -> Job[FinetuneOutcome]:
    """Fine-tune a model on annotated slides (a job: yields Progress, returns the outcome).

    ``plan``: ``request``'s, when the caller prepared it already (to show its cautions).

    Raises
    ------
    FinetuneInputError
        Before anything is computed, for every bad input at once.
    """
    if plan is None or plan.request is not request:
        plan = prepare_finetune(request)
    meta, class_names = plan.meta, plan.class_names
    bags: list[FinetuneBag] = []
    counts: dict[str, dict[str, int]] = {}
    n = len(plan.slides)
    for i, prepared in enumerate(plan.slides):
        slide_id = prepared.identity.slide_id
        features = prepared.slide.features
        if features is None:
            features = yield from sub_job(
                features_for(
                    Path(prepared.slide.path or ""), prepared.identity, meta,
                    Path(request.cache_dir), request.features_dir, request.settings.device,
                    request.slide_mpp,
                ),
                0, None, f"features {i + 1}/{n} ({slide_id}): ",
            )  # fmt: skip
        coords = read_coords(features)
        info = read_feature_info(features)
        if coords is None or len(coords) == 0:
            raise FinetuneInputError(f"{prepared.slide.name}: no tissue patches to learn from")
        patches = _patch_labels(prepared, coords, int(info.patch_size_level0 or 0), plan)
        counts[slide_id] = patches.counts
        bags.append(
            FinetuneBag(
                slide_id, features, class_names.index(prepared.label),
                patches.labels if (patches.labels >= 0).any() else None,
                patches.keep if not patches.keep.all() else None,
            )
        )  # fmt: skip
    out = Path(request.out)
    lineage = _lineage(plan, counts)
    yield Progress(0, None, "fine-tuning")
    settings, state = request.settings, out.parent / f".{out.name}.finetune-state"
    short_of_memory = False
    try:
        result = yield from finetune_model(
            Path(request.base), bags, class_names, settings, out, state, lineage
        )
    except torch.OutOfMemoryError as error:
        if settings.device != "auto":
            raise DeviceMemoryError(
                f"fine-tuning on {settings.device}: the GPU ran out of memory "
                f"({allocation_of(error)}); fine-tune on the CPU (--device cpu)"
            ) from None
        short_of_memory = True
    if short_of_memory:  # "auto" on a GPU too small for these bags: the CPU has room
        torch.cuda.empty_cache()
        yield Progress(0, None, "GPU memory short: fine-tuning starts again on the CPU")
        settings = replace(settings, device="cpu")
        result = yield from finetune_model(
            Path(request.base), bags, class_names, settings, out, state, lineage
        )
    return FinetuneOutcome(result, plan, counts)


def _patch_labels(
    prepared: PreparedSlide, coords: np.ndarray, size: int, plan: FinetunePlan
) -> PatchLabels:
    outside = plan.request.outside_class
    if not prepared.regions and outside is not None and prepared.label == outside:
        # a slide of the outside class (e.g. normal) holds nothing else
        labels = np.full(len(coords), plan.class_names.index(outside), np.int64)
        return PatchLabels(labels, np.ones(len(coords), bool), {outside: len(coords)})
    return label_patches(
        coords, size, prepared.regions, plan.class_names, outside if prepared.regions else None
    )


def _lineage(plan: FinetunePlan, counts: dict[str, dict[str, int]]) -> dict[str, Any]:
    request = plan.request
    base = Path(request.base)
    return {
        "base": {"file": str(base.resolve()), "name": base.name, "sha256": file_sha256(base)},
        "classes": plan.class_names,
        "added_classes": list(request.add_classes),
        "class_map": dict(request.class_map),
        "outside_class": request.outside_class,
        "slides": [
            {
                "slide_id": p.identity.slide_id,
                "fingerprint": p.identity.fingerprint,
                "file": str(Path(p.slide.path).resolve()) if p.slide.path else None,
                "features": str(p.slide.features) if p.slide.features else None,
                "label": p.label,
                "label_source": p.label_source,
                "annotations": str(p.slide.annotations) if p.slide.annotations else None,
                "annotations_sha256": p.annotations_sha256,
                "patches": counts.get(p.identity.slide_id, {}),
            }
            for p in plan.slides
        ],
        "settings": request.settings.to_meta(),
        "rules": {"patch": PATCH_RULE, "label": LABEL_RULE, "validation": VALIDATION_RULE},
    }
