"""How far a slide is from what the model learnt from: the trust flag of every analysis.

Two checks, both Qt-free so that every face (window, plugin, CLI, exports) reads one answer
from the :class:`~slidescope.app.analysis.slide_analysis.SlideAnalysis`:

- scale: a slide scanned at a resolution far from the training slides' (or coarser than the
  model's patches) shows the model tissue at a size it never saw;
- features: the slide's patch features against the statistics of the training features the
  checkpoint records (``feature_stats``), through
  ``slidescope.models.ood.experience_distance(features, metadata) -> (score, is_outside,
  reason)``. A checkpoint without those statistics (or an install without that function)
  gives no feature verdict, and says so, rather than a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: how far (as a ratio) a slide's resolution may be from the training slides' before the
#: model sees cells at a size it never learnt (a 20x scan for a 40x model is 2x)
SCALE_TOLERANCE = 1.25


@dataclass(frozen=True)
class Trust:
    """Whether a slide lies inside the model's experience, and why not.

    Attributes
    ----------
    is_outside : bool
        True when any check found the slide outside what the model learnt from.
    reasons : tuple of str
        One sentence per failed check, in the pathologist's words.
    distance : float or None
        The feature distance to the training data (None when the checkpoint has no
        statistics of its training features).
    notes : tuple of str
        What could not be checked, e.g. a checkpoint without training statistics.
    """

    is_outside: bool = False
    reasons: tuple[str, ...] = ()
    distance: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def headline(self) -> str:
        """``"outside this model's experience: <reasons>"`` or ``""`` when inside."""
        if not self.is_outside:
            return ""
        return "outside this model's experience: " + "; ".join(self.reasons)

    def to_dict(self) -> dict[str, Any]:
        return {
            "is_outside": self.is_outside,
            "reasons": list(self.reasons),
            "distance": self.distance,
            "notes": list(self.notes),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Trust | None:
        if not data:
            return None
        distance = data.get("distance")
        return cls(
            is_outside=bool(data.get("is_outside", False)),
            reasons=tuple(str(r) for r in data.get("reasons", ())),
            distance=None if distance is None else float(distance),
            notes=tuple(str(n) for n in data.get("notes", ())),
        )


def magnification(mpp: float) -> float:
    """The objective magnification a resolution corresponds to (0.25 µm/px ≈ 40×)."""
    return 10.0 / float(mpp)


def scale_reasons(
    slide_mpp: float | None, target_mpp: float | None, training_slide_mpp: float | None
) -> tuple[list[str], list[str]]:
    """(reasons, notes) of the resolution check."""
    if slide_mpp is None:
        return [], ["the slide does not say its resolution (µm per pixel)"]
    reasons: list[str] = []
    here = f"{slide_mpp:.3g} µm/px (about {magnification(slide_mpp):.0f}×)"
    if training_slide_mpp:
        ratio = slide_mpp / float(training_slide_mpp)
        if not (1 / SCALE_TOLERANCE <= ratio <= SCALE_TOLERANCE):
            reasons.append(
                f"scanned at {here}, the model learnt from slides at "
                f"{training_slide_mpp:.3g} µm/px (about {magnification(training_slide_mpp):.0f}×)"
            )
    if target_mpp and slide_mpp > float(target_mpp) * 1.1:
        reasons.append(
            f"the slide ({here}) is coarser than the model's patches ({float(target_mpp):.3g} "
            "µm/px): detail would be invented by upsampling"
        )
    return reasons, []


def training_slide_mpp(meta: Any) -> float | None:
    """The resolution of the slides the model was trained on, when the checkpoint says it."""
    stats = getattr(meta, "feature_stats", None) or {}
    training = getattr(meta, "training", None) or {}
    for source in (stats, training):
        value = source.get("slide_mpp") if isinstance(source, dict) else None
        if value:
            return float(value)
    # a patch of ``patch_size`` px at ``target_mpp`` covered ``patch_size_level0`` pixels of
    # the training slides: that ratio is their resolution
    level0 = training.get("patch_size_level0") if isinstance(training, dict) else None
    target, size = getattr(meta, "target_mpp", None), getattr(meta, "patch_size", None)
    if level0 and target and size:
        return float(target) * float(size) / float(level0)
    return None


def assess_trust(features: np.ndarray | None, meta: Any, slide_mpp: float | None) -> Trust:
    """Check a slide against a checkpoint's experience.

    Parameters
    ----------
    features : ndarray or None
        (N, D) the slide's patch features (None: the feature check is skipped).
    meta : CheckpointMeta
        The checkpoint's metadata.
    slide_mpp : float or None
        The slide's level-0 µm per pixel.
    """
    reasons, notes = scale_reasons(
        slide_mpp, getattr(meta, "target_mpp", None), training_slide_mpp(meta)
    )
    distance = None
    if features is not None and len(features):
        experience_distance: Callable[[Any, Any], tuple[float, bool, str]] | None
        try:
            from slidescope.models.ood import experience_distance
        except ImportError:
            experience_distance = None
        has_stats = bool(getattr(meta, "feature_stats", None))
        if experience_distance is None or not has_stats:
            notes.append("this checkpoint records no statistics of its training features")
        else:
            score, outside, reason = experience_distance(np.asarray(features), meta)
            distance = float(score)
            if outside:
                reasons.append(str(reason))
    return Trust(bool(reasons), tuple(reasons), distance, tuple(notes))
