"""What every export carries, and how every export file is written (atomically)."""

from __future__ import annotations

from typing import Any

from slidescope.app.analysis.heatmaps import DisplayChoices
from slidescope.app.analysis.slide_analysis import SlideAnalysis
from slidescope.models.files import atomic_path, write_text_atomic


def export_metadata(
    analysis: SlideAnalysis,
    display: DisplayChoices,
    *,
    layer: str | None = None,
    value_range: tuple[float, float] | None = None,
) -> dict[str, Any]:
    """The slide's identity and mpp, the model's verdict and the display choices.

    Parameters
    ----------
    analysis : SlideAnalysis
    display : DisplayChoices
    layer : str, optional
        The score shown (``attention``, ``hard_attention``, ``masked``, ``prob_<class>``).
    value_range : tuple of float, optional
        The displayed (normalised, smoothed) range the colormap spans.
    """
    meta: dict[str, Any] = {
        "software": "SlideScope",
        "slide": analysis.identity.to_dict(),
        "mpp": list(analysis.identity.mpp) if analysis.identity.mpp else None,
        "patch_size_level0": analysis.patch_size_level0,
        "checkpoint": analysis.checkpoint_path,
        "checkpoint_sha256": analysis.checkpoint_hash,
        "arch": analysis.arch,
        "extractor": analysis.extractor,
        "class_names": analysis.class_names,
        "probabilities": [float(p) for p in analysis.probabilities],
        "predicted_class": analysis.predicted_class,
        "mask_ratio": analysis.mask_ratio,
        "mask_score": analysis.mask_score,
        "score_source": analysis.score_source,
        "status": analysis.status,
        "display": display.to_dict(),
    }
    if layer is not None:
        meta["layer"] = layer
    if value_range is not None:
        meta["value_range"] = [float(value_range[0]), float(value_range[1])]
    return meta


# One atomic writer for the whole program (temp names end in ``.tmp``, so a killed export
# leaves nothing that looks finished, and remove_stale_temps clears it on the next run).
__all__ = ["atomic_path", "export_metadata", "write_text_atomic"]
