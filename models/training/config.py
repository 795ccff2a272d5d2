"""Every setting of a training run, with the defaults of the MHIM-MIL paper and its code.

Sources of the defaults: Tang et al., ICCV 2023 (MHIM-MIL) and the journal extension
(MHIM-v2, global recycle network), and the settings of github DearCaat/MHIM-MIL:
Adam(W), lr 2e-4, weight decay 1e-5, teacher momentum 0.9999, teacher temperature 0.1,
a small high-score masking ratio with a random share of a larger top set, and a large
random masking ratio whose instances the recycle network summarises.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slidescope.models.devices import check_device_name
from slidescope.models.errors import ModelError
from slidescope.models.mil.registry import UnknownModelError, list_models

METHODS = ("plain", "mhim")
TASKS = ("classification", "survival")
BALANCE = ("weights", "sampling", "none")
MASK_SCORES = ("attention", "cls_prob")


class TrainingConfigError(ModelError, ValueError):
    """A training setting is out of range or unknown."""


@dataclass
class MHIMConfig:
    """Masked hard instance mining settings (``method="mhim"``).

    Attributes
    ----------
    mask_ratio_high : float
        r_h, share of instances masked because the teacher scores them highest.
    mask_ratio_high_random : float
        r_hr, the high-score mask is a random r_hr share of the top ceil(N r_h / r_hr)
        instances (1.0: exactly the top ones).
    mask_ratio_high_decay : bool
        Decay r_h to 0 over training by a cosine schedule (``mrh_sche`` of the paper).
    mask_ratio_low : float
        r_l, share of the lowest-scoring instances masked.
    mask_ratio_random : float
        r_r, share of all instances masked uniformly at random.
    mask_score : str
        ``attention`` (teacher attention) or ``cls_prob`` (class-aware instance
        probability, max over classes).
    consistency_weight : float
        alpha, weight of the teacher-student consistency loss.
    teacher_temperature, student_temperature : float
        Softmax temperatures of the bag features in the consistency loss.
    momentum : float
        Teacher EMA momentum.
    momentum_final : float or None
        When set, momentum follows a cosine schedule from ``momentum`` to this value.
    recycle : bool
        Summarise the randomly masked instances into global tokens (journal version).
    recycle_tokens : int
        k, number of global tokens.
    recycle_heads : int
        Heads of the recycle cross-attention.
    recycle_momentum : float
        EMA momentum of the learnable global queries.
    recycle_source : str
        Whose hidden instances the recycle network summarises: ``teacher`` (default;
        computed anyway, so the student embeds only the kept instances — MHIM then costs
        about as much as plain training) or ``student`` (the reference code's path: the
        student embeds the whole bag and the recycled instances train its embedding).
    warmup_epochs : int or None
        Epochs of plain training before masking starts; at their end the teacher is a
        copy of the student. The paper initialises the teacher from a plain-trained model
        (``teacher_init``); without one, a teacher of random weights that moves with
        momentum 0.9999 would mask at random and pull the student towards noise, so the
        run trains its own plain start. None: 0 with ``teacher_init``, else a fifth of
        the epochs (at least 1).
    """

    mask_ratio_high: float = 0.01
    mask_ratio_high_random: float = 0.5
    mask_ratio_high_decay: bool = True
    mask_ratio_low: float = 0.0
    mask_ratio_random: float = 0.6
    mask_score: str = "attention"
    consistency_weight: float = 0.5
    teacher_temperature: float = 0.1
    student_temperature: float = 1.0
    momentum: float = 0.9999
    momentum_final: float | None = None
    recycle: bool = True
    recycle_tokens: int = 10
    recycle_heads: int = 4
    recycle_momentum: float = 0.9
    recycle_source: str = "teacher"
    warmup_epochs: int | None = None

    def validate(self) -> None:
        for name in ("mask_ratio_high", "mask_ratio_low", "mask_ratio_random"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise TrainingConfigError(f"{name} must be in [0, 1), got {value}")
        if not 0.0 < self.mask_ratio_high_random <= 1.0:
            raise TrainingConfigError(
                f"mask_ratio_high_random must be in (0, 1], got {self.mask_ratio_high_random}"
            )
        if self.mask_score not in MASK_SCORES:
            raise TrainingConfigError(
                f"mask_score must be one of {MASK_SCORES}, got {self.mask_score!r}"
            )
        if not 0.0 <= self.momentum <= 1.0:
            raise TrainingConfigError(f"momentum must be in [0, 1], got {self.momentum}")
        if self.recycle_source not in ("teacher", "student"):
            raise TrainingConfigError(
                f"recycle_source must be teacher or student, got {self.recycle_source!r}"
            )
        if self.recycle_tokens < 1:
            raise TrainingConfigError("recycle_tokens must be at least 1")

    def __post_init__(self) -> None:
        self.validate()


@dataclass
class TrainingConfig:
    """A training run: data, model, method and optimisation.

    Attributes
    ----------
    features : Path
        Folder of ``<slide_id>.h5`` feature files.
    labels : Path
        Labels CSV.
    out : Path
        Where the checkpoint (.safetensors) is written.
    model : str
        Registry name of the MIL model.
    model_kwargs : dict
        Extra keyword arguments of the model constructor.
    method : str
        ``plain`` or ``mhim``.
    task : str
        ``classification`` or ``survival``.
    aem : float
        lambda of attention entropy maximisation (0: off).
    epochs, patience : int
        Maximum epochs; epochs without improvement of the validation metric before
        stopping (0: never stop early).
    lr, weight_decay : float
        AdamW settings; the learning rate follows a cosine schedule after
        ``warmup_epochs`` of linear warm-up.
    val_fraction : float
        Share of each class held out for validation when the CSV has no split column.
    balance : str
        Class imbalance: ``weights`` (inverse-frequency class weights in the loss),
        ``sampling`` (balanced sampling of bags), or ``none``.
    max_instances : int or None
        Training bags larger than this are randomly subsampled per step (memory).
    cache_bytes : int
        Budget of the in-memory bag cache.
    survival_bins : int
        Discrete-time bins of survival hazards.
    survival_alpha : float
        Weight of the uncensored term of the survival NLL (Zadeh & Schmid's alpha).
    teacher_init : Path or None
        A plain-trained checkpoint that initialises the teacher and the student.
    skip_missing : bool
        Leave out labelled slides without a feature file (with a warning) instead of
        failing.
    """

    features: Path
    labels: Path
    out: Path
    model: str = "abmil"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    method: str = "plain"
    task: str = "classification"
    aem: float = 0.0
    epochs: int = 50
    patience: int = 10
    lr: float = 2e-4
    weight_decay: float = 1e-5
    warmup_epochs: int = 0
    seed: int = 0
    device: str = "auto"
    val_fraction: float = 0.2
    balance: str = "weights"
    max_instances: int | None = None
    cache_bytes: int = 2 * 1024**3
    survival_bins: int = 4
    survival_alpha: float = 0.0
    teacher_init: Path | None = None
    skip_missing: bool = False
    mhim: MHIMConfig = field(default_factory=MHIMConfig)

    def __post_init__(self) -> None:
        self.features = Path(self.features)
        self.labels = Path(self.labels)
        self.out = Path(self.out)
        if self.teacher_init is not None:
            self.teacher_init = Path(self.teacher_init)
        # settings are checked when they are made, before any data is read
        self.validate()

    def mhim_warmup_epochs(self) -> int:
        """Plain epochs before MHIM starts (0 for ``plain``)."""
        if self.method != "mhim":
            return 0
        if self.mhim.warmup_epochs is not None:
            return min(self.mhim.warmup_epochs, self.epochs - 1)
        if self.teacher_init is not None:
            return 0
        return min(max(1, round(self.epochs / 5)), self.epochs - 1)

    def validate(self) -> None:
        """Raise :class:`TrainingConfigError` naming the first setting out of range.

        Runs when the config is made (and again by jobs that receive one).
        """
        if self.model not in list_models():
            raise UnknownModelError(
                f"unknown MIL model {self.model!r}; choose from {', '.join(list_models())}"
            )
        check_device_name(self.device)
        if self.method not in METHODS:
            raise TrainingConfigError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.task not in TASKS:
            raise TrainingConfigError(f"task must be one of {TASKS}, got {self.task!r}")
        if self.balance not in BALANCE:
            raise TrainingConfigError(f"balance must be one of {BALANCE}, got {self.balance!r}")
        if self.epochs < 1:
            raise TrainingConfigError(f"epochs must be at least 1, got {self.epochs}")
        if not 0.0 < self.val_fraction < 1.0:
            raise TrainingConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        if self.aem < 0:
            raise TrainingConfigError(f"aem must be >= 0, got {self.aem}")
        if self.teacher_init is not None and self.method != "mhim":
            raise TrainingConfigError("teacher_init applies to the mhim method only")
        self.mhim.validate()

    def to_meta(self) -> dict[str, Any]:
        """The settings as JSON-friendly values, for ``meta.training`` of the checkpoint.

        MHIM settings sit at the top level under the names that inference reads
        (``method``, ``mask_ratio_high``, ``mask_ratio_high_random``, ``mask_ratio_low``,
        ``mask_ratio_random``, ``mask_score``).
        """
        settings: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if key == "mhim":
                continue
            settings[key] = str(value) if isinstance(value, Path) else value
        settings.pop("features", None)
        settings.pop("labels", None)
        settings.pop("out", None)
        if self.method == "mhim":
            settings.update(asdict(self.mhim))
        return settings
