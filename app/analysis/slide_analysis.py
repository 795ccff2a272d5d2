"""What a MIL model says about one slide: its prediction and the scores of every patch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from slidescope.app.analysis.trust import Trust
from slidescope.app.slides.slide import SlideIdentity
from slidescope.models.prediction import predict_label

#: 2: results carry the checkpoint's prediction rule (``decision_threshold``)
RESULT_FORMAT_VERSION = 2

STATUS_OK = "ok"
STATUS_NO_TISSUE = "no tissue"

#: the per-patch arrays of a :class:`SlideAnalysis`, as stored in its ``.npz``
ARRAY_FIELDS: tuple[str, ...] = (
    "coords",
    "probabilities",
    "attention",
    "instance_probs",
    "masked",
    "hard_attention",
    "mask_scores",
)


@dataclass
class SlideAnalysis:
    """One slide seen by one checkpoint.

    Attributes
    ----------
    identity : SlideIdentity
        Which slide (id, fingerprint, level-0 size, mpp).
    coords : ndarray
        (N, 2) int64 level-0 (x, y) top-left corners of the patches.
    patch_size_level0 : int
        Level-0 size of one patch in pixels.
    class_names : list of str
        The checkpoint's classes, in logit order.
    probabilities : ndarray
        (C,) slide-level class probabilities (softmax of the logits); NaN with no tissue.
    attention : ndarray
        (N,) the model's attention on the full bag.
    instance_probs : ndarray
        (N, C) class-aware instance probability per class.
    masked : ndarray
        (N,) bool, the salient set MHIM masks (top ``mask_ratio`` by ``mask_score``).
    hard_attention : ndarray
        (N,) attention recomputed on the unmasked patches; 0 for masked ones.
    mask_ratio : float
        The salient share ``r_h`` used.
    mask_score : str
        What ranked the patches: ``"attention"`` or ``"prob"``.
    score_source : str
        Who ranked them: ``"student"`` (the model) or ``"teacher"`` (the saved EMA teacher).
    checkpoint_path, checkpoint_hash : str
        The checkpoint file and the SHA-256 of its bytes.
    extractor : str
        The feature extractor the checkpoint expects (and the features came from).
    arch : str
        The MIL model's registry name.
    status : str
        ``"ok"``, or ``"no tissue"`` when the slide gave an empty bag.
    mask_scores : ndarray
        (N,) the scores that ranked the patches for masking.
    decision_threshold : float or None
        The checkpoint's prediction rule (:mod:`slidescope.models.prediction`): two classes,
        the positive-class cut chosen on validation; None, the most probable class.
    """

    identity: SlideIdentity
    coords: np.ndarray
    patch_size_level0: int
    class_names: list[str]
    probabilities: np.ndarray
    attention: np.ndarray
    instance_probs: np.ndarray
    masked: np.ndarray
    hard_attention: np.ndarray
    mask_ratio: float
    mask_score: str = "attention"
    score_source: str = "student"
    checkpoint_path: str = ""
    checkpoint_hash: str = ""
    extractor: str = ""
    arch: str = ""
    status: str = STATUS_OK
    mask_scores: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    decision_threshold: float | None = None
    trust: Trust | None = None

    @property
    def n_patches(self) -> int:
        return int(self.coords.shape[0])

    @property
    def predicted_index(self) -> int | None:
        """Index of the predicted class by the checkpoint's rule, None with no tissue."""
        if self.probabilities.size == 0:
            return None
        return predict_label(self.probabilities, self.decision_threshold)

    @property
    def predicted_class(self) -> str | None:
        """Name of the predicted class by the checkpoint's rule, None with no tissue."""
        index = self.predicted_index
        return None if index is None else self.class_names[index]

    def prob(self, class_name: str) -> np.ndarray:
        """(N,) class-aware instance probability of ``class_name``."""
        try:
            index = self.class_names.index(class_name)
        except ValueError:
            raise KeyError(
                f"no class {class_name!r}; the checkpoint's classes are {self.class_names}"
            ) from None
        return self.instance_probs[:, index]

    def metadata(self) -> dict[str, Any]:
        """Everything but the arrays, as JSON-ready values."""
        return {
            "format_version": RESULT_FORMAT_VERSION,
            "identity": self.identity.to_dict(),
            "patch_size_level0": int(self.patch_size_level0),
            "class_names": list(self.class_names),
            "predicted_class": self.predicted_class,
            "probabilities": [float(p) for p in self.probabilities],
            "n_patches": self.n_patches,
            "mask_ratio": float(self.mask_ratio),
            "mask_score": self.mask_score,
            "score_source": self.score_source,
            "checkpoint_path": self.checkpoint_path,
            "checkpoint_hash": self.checkpoint_hash,
            "extractor": self.extractor,
            "arch": self.arch,
            "status": self.status,
            "decision_threshold": self.decision_threshold,
            "trust": None if self.trust is None else self.trust.to_dict(),
        }

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(getattr(self, name)) for name in ARRAY_FIELDS}

    @classmethod
    def from_stored(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> SlideAnalysis:
        """Rebuild from :meth:`metadata` and :meth:`arrays`.

        Raises ``KeyError`` for a result stored by an older version (recomputed then).
        """
        if meta.get("format_version") != RESULT_FORMAT_VERSION:
            raise KeyError("format_version")
        threshold = meta.get("decision_threshold")
        return cls(
            identity=SlideIdentity.from_dict(meta["identity"]),
            coords=np.asarray(arrays["coords"], dtype=np.int64).reshape(-1, 2),
            patch_size_level0=int(meta["patch_size_level0"]),
            class_names=[str(c) for c in meta["class_names"]],
            probabilities=np.asarray(arrays["probabilities"], dtype=np.float32),
            attention=np.asarray(arrays["attention"], dtype=np.float32),
            instance_probs=np.asarray(arrays["instance_probs"], dtype=np.float32).reshape(
                -1, len(meta["class_names"])
            ),
            masked=np.asarray(arrays["masked"], dtype=bool),
            hard_attention=np.asarray(arrays["hard_attention"], dtype=np.float32),
            mask_ratio=float(meta["mask_ratio"]),
            mask_score=str(meta.get("mask_score", "attention")),
            score_source=str(meta.get("score_source", "student")),
            checkpoint_path=str(meta.get("checkpoint_path", "")),
            checkpoint_hash=str(meta.get("checkpoint_hash", "")),
            extractor=str(meta.get("extractor", "")),
            arch=str(meta.get("arch", "")),
            status=str(meta.get("status", STATUS_OK)),
            mask_scores=np.asarray(arrays.get("mask_scores", np.zeros(0)), dtype=np.float32),
            decision_threshold=None if threshold is None else float(threshold),
            trust=Trust.from_dict(meta.get("trust")),
        )


def empty_analysis(
    identity: SlideIdentity,
    class_names: list[str],
    patch_size_level0: int,
    **metadata: Any,
) -> SlideAnalysis:
    """The result of a slide without tissue: no patches, NaN probabilities, status "no tissue"."""
    n_classes = len(class_names)
    return SlideAnalysis(
        identity=identity,
        coords=np.zeros((0, 2), np.int64),
        patch_size_level0=int(patch_size_level0),
        class_names=list(class_names),
        probabilities=np.full(n_classes, np.nan, np.float32),
        attention=np.zeros(0, np.float32),
        instance_probs=np.zeros((0, n_classes), np.float32),
        masked=np.zeros(0, bool),
        hard_attention=np.zeros(0, np.float32),
        status=STATUS_NO_TISSUE,
        **metadata,
    )
