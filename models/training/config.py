"""Every setting of a training run, with the defaults of the MHIM-MIL paper and its code.

Sources of the defaults: Tang et al., ICCV 2023 (MHIM-MIL) and the journal extension
(MHIM-v2, global recycle network), and the settings of github DearCaat/MHIM-MIL:
lr 2e-4, weight decay 1e-5, teacher momentum 0.9999, teacher temperature 0.1, a small
high-score masking ratio with a random share of a larger top set, and a large random
masking ratio whose instances the recycle network summarises. The optimiser (AdamW) and
the learning-rate schedule (per step, to 1 % of the rate) are ours; the reference's Adam
and per-epoch cosine are options, which the presets
(:mod:`slidescope.models.training.presets`) set.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slidescope.models.devices import check_device_name
from slidescope.models.errors import ModelError

METHODS = ("plain", "mhim")
TASKS = ("classification", "survival")
BALANCE = ("weights", "sampling", "none")
MASK_SCORES = ("attention", "cls_prob")
#: where the MHIM teacher comes from without ``teacher_init``: ``plain`` trains a plain
#: model on the run's own training slides first (the paper's procedure), ``self`` warms
#: the student up with plain epochs inside the run and copies it
TEACHER_SOURCES = ("plain", "self")
#: the reference's ``init_stu_type``: what of the plain model the student starts from
STUDENT_INITS = ("none", "fc", "all")
TEACHER_MODES = ("eval", "train")
#: validation figures a run can select its model by; ``auto``: AUC for two classes,
#: balanced accuracy for more, c-index for survival
SELECTION_METRICS = ("auto", "auc", "loss", "accuracy", "balanced_accuracy", "c_index")
#: ``adamw`` (decoupled weight decay) or ``adam`` (weight decay as an L2 term, the reference)
OPTIMIZERS = ("adamw", "adam")
#: when the cosine learning rate moves: after every optimiser ``step``, or once per
#: ``epoch`` (the reference's ``CosineAnnealingLR`` / timm cosine, stepped per epoch)
LR_SCHEDULES = ("step", "epoch")


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
        r_r, share of all instances masked uniformly at random (the ICCV version's
        ``mask_ratio``). Without recycling they are discarded; with it, the recycle
        network summarises those that no score mask chose.
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
        k, number of global tokens (reference ``merge_k``: 1).
    recycle_heads : int
        Heads of the recycle cross-attention (reference: 8, of 64 channels each at 512-d).
    recycle_dropout : float
        Dropout on the recycle attention weights (reference: 0.1).
    recycle_momentum : float
        EMA momentum of the global queries (reference ``merge_mm``: 0.9998-0.9999).
    merge_ratio : float
        With recycling: the share of the instances the masks leave that the student sees
        as instances; a random ``1 - merge_ratio`` of them joins the recycled ones (the
        journal's ``merge_ratio``: nothing is discarded). 1.0: only the randomly masked
        instances are recycled.
    recycle_source : str
        Whose hidden instances the recycle network summarises: ``student`` (the
        reference: the student embeds the whole bag and the recycled instances train its
        embedding through the tokens) or ``teacher`` (cheaper: the student embeds only
        the kept instances and the tokens summarise the teacher's hidden instances).
    teacher_source : str
        Without ``teacher_init``: ``plain`` (default, as the paper) trains a plain model
        on this run's training slides first and starts the teacher from it; ``self``
        trains ``warmup_epochs`` plain epochs inside the run and copies the student.
    teacher_epochs : int or None
        Epochs of the plain teacher run (None: the run's epochs).
    init_student : str
        The reference's ``init_stu_type``: ``none`` (the student starts from scratch),
        ``fc`` (only the instance embedding is copied from the plain model; the
        published commands) or ``all``.
    teacher_mode : str
        ``eval`` (dropout off in the teacher's forward) or ``train`` (dropout on, as a
        teacher module left in training mode).
    warmup_epochs : int or None
        ``teacher_source="self"`` only: plain epochs before masking starts (None: a
        fifth of the epochs, at least 1).
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
    recycle_tokens: int = 1
    recycle_heads: int = 8
    recycle_dropout: float = 0.1
    recycle_momentum: float = 0.9999
    merge_ratio: float = 1.0
    recycle_source: str = "student"
    teacher_source: str = "plain"
    teacher_epochs: int | None = None
    init_student: str = "fc"
    teacher_mode: str = "eval"
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
        if not 1 <= self.recycle_tokens <= 1024:
            raise TrainingConfigError(f"recycle_tokens must be 1-1024, got {self.recycle_tokens}")
        if not 1 <= self.recycle_heads <= 256:
            raise TrainingConfigError(f"recycle_heads must be 1-256, got {self.recycle_heads}")
        if not 0.0 <= self.recycle_dropout < 1.0:
            raise TrainingConfigError(
                f"recycle_dropout must be in [0, 1), got {self.recycle_dropout}"
            )
        if not 0.0 <= self.recycle_momentum <= 1.0:
            raise TrainingConfigError(
                f"recycle_momentum must be in [0, 1], got {self.recycle_momentum}"
            )
        if not 0.0 < self.merge_ratio <= 1.0:
            raise TrainingConfigError(f"merge_ratio must be in (0, 1], got {self.merge_ratio}")
        for name, value, choices in (
            ("teacher_source", self.teacher_source, TEACHER_SOURCES),
            ("init_student", self.init_student, STUDENT_INITS),
            ("teacher_mode", self.teacher_mode, TEACHER_MODES),
        ):
            if value not in choices:
                raise TrainingConfigError(f"{name} must be one of {choices}, got {value!r}")
        if self.teacher_epochs is not None and self.teacher_epochs < 1:
            raise TrainingConfigError(
                f"teacher_epochs must be at least 1, got {self.teacher_epochs}"
            )

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
        Optimiser settings; the learning rate follows a cosine schedule after
        ``warmup_epochs`` of linear warm-up.
    optimizer : str
        ``adamw`` or ``adam`` (:data:`OPTIMIZERS`).
    lr_schedule : str
        The cosine moves after every optimiser ``step`` or once per ``epoch``
        (:data:`LR_SCHEDULES`; warm-up counts in the same unit).
    min_lr : float or None
        The learning rate the cosine ends at (None: 1 % of ``lr``, so late epochs still
        learn).
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
        A plain-trained checkpoint that initialises the teacher (and the student as
        ``mhim.init_student`` says). With cross-validation, a path holding ``{fold}``
        names one checkpoint per fold.
    skip_missing : bool
        Leave out labelled slides without a feature file (with a warning) instead of
        failing.
    model_config : str
        ``default`` (our model defaults) or ``reference`` (the MHIM-MIL reference code's
        baselines, :mod:`slidescope.models.mil.reference`); ``model_kwargs`` go on top.
    selection_metric : str
        Validation figure the kept epoch is chosen by (:data:`SELECTION_METRICS`).
    min_epochs : int
        No epoch before this one is kept, and training never stops before it: the model
        kept has trained this long.
    stop_epoch : int or None
        The reference's ``stop_epoch``: early stopping ends a run only at an epoch whose
        0-based index exceeds it (from epoch ``stop_epoch + 2``, counting from 1). Unlike
        ``min_epochs`` it does not limit which epoch is kept. None: no such limit.
    preset : str or None
        Name of the published setting this run follows (recorded in the checkpoint).
    resume : bool
        Save the run's state after every epoch beside ``out`` and continue from it when
        the same run is started again.
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
    optimizer: str = "adamw"
    lr_schedule: str = "step"
    min_lr: float | None = None
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
    model_config: str = "default"
    selection_metric: str = "auto"
    min_epochs: int = 0
    stop_epoch: int | None = None
    preset: str | None = None
    resume: bool = True
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
        if self.teacher_init is not None or self.mhim.teacher_source != "self":
            return 0
        if self.mhim.warmup_epochs is not None:
            return min(self.mhim.warmup_epochs, self.epochs - 1)
        return min(max(1, round(self.epochs / 5)), self.epochs - 1)

    def resolved_model_kwargs(self) -> dict[str, Any]:
        """The model's keyword arguments: ``model_config``'s, then ``model_kwargs``."""
        from slidescope.models.mil.reference import model_kwargs

        try:
            return model_kwargs(self.model, self.model_config, self.model_kwargs)
        except ValueError as error:
            raise TrainingConfigError(str(error)) from None

    def validate(self) -> None:
        """Raise :class:`TrainingConfigError` naming the first setting out of range.

        Runs when the config is made (and again by jobs that receive one).
        """
        from slidescope.models.mil.registry import model_arguments  # the models bring torch

        model_arguments(self.model)  # an unknown name: the registry's error lists the known ones
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
        if self.selection_metric not in SELECTION_METRICS:
            raise TrainingConfigError(
                f"selection_metric must be one of {SELECTION_METRICS}, got {self.selection_metric!r}"
            )
        if not 0 <= self.min_epochs <= self.epochs:
            raise TrainingConfigError(
                f"min_epochs must be in [0, epochs={self.epochs}], got {self.min_epochs}"
            )
        if self.stop_epoch is not None and self.stop_epoch < 0:
            raise TrainingConfigError(f"stop_epoch must be >= 0, got {self.stop_epoch}")
        if self.patience < 0:
            raise TrainingConfigError(f"patience must be >= 0, got {self.patience}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise TrainingConfigError(f"lr must be a positive number, got {self.lr}")
        if self.min_lr is not None and not 0.0 <= self.min_lr <= self.lr:
            raise TrainingConfigError(f"min_lr must be in [0, lr={self.lr}], got {self.min_lr}")
        for name, value, choices in (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("lr_schedule", self.lr_schedule, LR_SCHEDULES),
        ):
            if value not in choices:
                raise TrainingConfigError(f"{name} must be one of {choices}, got {value!r}")
        if self.max_instances is not None and self.max_instances < 1:
            raise TrainingConfigError(
                f"max_instances must be at least 1, got {self.max_instances}"
            )
        if self.survival_bins < 1:
            raise TrainingConfigError(
                f"survival_bins must be at least 1, got {self.survival_bins}"
            )
        self.mhim.validate()
        # Model name and arguments are checked here, before any data loads.
        from slidescope.models.mil.registry import check_model_arguments

        kwargs = self.resolved_model_kwargs()
        check_model_arguments(self.model, kwargs)
        from slidescope.models.mil.base import check_size

        for key in ("hidden_dim", "attention_dim", "q_dim", "n_heads", "n_landmarks"):
            if kwargs.get(key) is not None:
                check_size(key, kwargs[key])

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
        settings["model_kwargs"] = self.resolved_model_kwargs()
        if self.method == "mhim":
            settings.update(asdict(self.mhim))
        return settings
