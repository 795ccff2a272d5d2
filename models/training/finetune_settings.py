"""Settings of a fine-tuning run, and which slides validate it."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from slidescope.models.errors import ModelError
from slidescope.models.training.config import MHIMConfig

METHODS = ("plain", "mhim", "aem")
VALIDATION = ("auto", "on", "off")
#: slides a class needs for a validation share to be held out
MIN_SLIDES_PER_CLASS = 3
VALIDATION_RULE = (
    f"validation: with 'auto' (default), a share (--val-fraction, at least one slide) of "
    f"each class is held out for early stopping and the decision threshold when every "
    f"class has at least {MIN_SLIDES_PER_CLASS} slides; otherwise every slide trains, all "
    "epochs run and the threshold is chosen on the training slides. 'on' refuses a set "
    "too small for it; 'off' never holds slides out."
)


#: AdamW's rate for fine-tuning: five times training's 2e-4. A fine-tuning run is a
#: hundred-odd steps (15 epochs of a handful of slides), not training's tens of thousands;
#: at 2e-4 the classifier barely moves: on the fine-tune benchmark (a lesion kind the base
#: never saw, 10 annotated slides) the new kind's slide AUC stayed at 0.29-0.54 while its
#: attention learned the outlines (0.98); at 1e-3 it is 0.92-1.0 for plain, MHIM and AEM
#: over three seeds, the first kind kept (slide AUC >= 0.958, attention >= 0.997).
FINETUNE_LR = 1e-3


class FinetuneError(ModelError):
    """The fine-tuning inputs cannot train a model (said before anything is trained)."""


@dataclass
class FinetuneSettings:
    """How a model is fine-tuned.

    Attributes
    ----------
    method : str
        ``plain``, ``mhim`` (masked hard instance mining with the base as teacher) or
        ``aem`` (plain + attention entropy maximisation, lambda ``aem``).
    epochs, patience : int
        Maximum epochs; epochs without a better validation figure before stopping (0:
        never stop early; no early stopping without a validation share).
    lr, weight_decay : float
        AdamW (rate :data:`FINETUNE_LR` by default); the rate follows a cosine to 1 % over
        the epochs.
    instance_weight : float or None
        Weight of the instance loss; None: 1.0 when any patch is labelled, else 0.
    aem : float
        lambda of AEM (``method="aem"``).
    validation : str
        ``auto``, ``on`` or ``off`` (see :data:`VALIDATION_RULE`).
    val_fraction : float
        Share of each class held out for validation.
    seed : int
        Seeds the order of bags, masks and dropout.
    device : str
        ``auto``, ``cpu``, ``cuda``.
    mhim : MHIMConfig
        MHIM settings (no plain warm-up: the base is already trained).
    """

    method: str = "plain"
    epochs: int = 15
    patience: int = 5
    lr: float = FINETUNE_LR
    weight_decay: float = 1e-5
    instance_weight: float | None = None
    aem: float = 0.1
    validation: str = "auto"
    val_fraction: float = 0.25
    seed: int = 0
    device: str = "auto"
    mhim: MHIMConfig = field(default_factory=lambda: MHIMConfig(warmup_epochs=0))

    def validate(self) -> None:
        """Raise :class:`FinetuneError` naming the first setting out of range."""
        if self.method not in METHODS:
            raise FinetuneError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.epochs < 1:
            raise FinetuneError(f"epochs must be at least 1, got {self.epochs}")
        if self.instance_weight is not None and self.instance_weight < 0:
            raise FinetuneError(f"instance-loss weight must be >= 0, got {self.instance_weight}")
        if self.validation not in VALIDATION:
            raise FinetuneError(f"validation must be auto, on or off, got {self.validation!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise FinetuneError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        self.mhim.validate()

    def to_meta(self) -> dict[str, Any]:
        """JSON-ready settings (MHIM's beside them for ``mhim``)."""
        data = asdict(self)
        mhim = data.pop("mhim")
        if self.method == "mhim":
            data.update(mhim)
        return data


def split_validation(
    labels: np.ndarray, settings: FinetuneSettings
) -> tuple[np.ndarray, np.ndarray]:
    """Training and validation rows under :data:`VALIDATION_RULE` (seeded, stratified)."""
    rows = np.arange(len(labels))
    if settings.validation == "off":
        return rows, np.zeros(0, np.int64)
    counts = {int(c): int((labels == c).sum()) for c in np.unique(labels)}
    small = {c: n for c, n in counts.items() if n < MIN_SLIDES_PER_CLASS}
    if small or len(counts) < 2:
        if settings.validation == "on":
            raise FinetuneError(
                f"too few slides for a validation share: {len(labels)} slide(s), "
                f"{', '.join(f'{n} of class {c}' for c, n in counts.items())}; every class "
                f"needs at least {MIN_SLIDES_PER_CLASS} (use --validation auto or off, or "
                "add slides)"
            )
        return rows, np.zeros(0, np.int64)
    rng = np.random.default_rng(settings.seed)
    held: list[int] = []
    for c in sorted(counts):
        members = rows[labels == c]
        n = max(1, round(settings.val_fraction * len(members)))
        held.extend(rng.permutation(members)[:n].tolist())
    val = np.array(sorted(held), np.int64)
    return np.setdiff1d(rows, val), val
