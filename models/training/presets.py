"""Named settings of the MHIM-MIL papers, for ``train --preset NAME``.

Each preset is the published setting of one table row: the reference baseline network
(``model_config="reference"``), the optimiser, the selection rule and the MHIM settings
of the commands in the reference code's README (DearCaat/MHIM-MIL; ``v1`` branch for the
ICCV 2023 paper, ``master`` for the journal version). A value the user gives explicitly
on the command line wins over the preset's.

Confidence: the shared settings (Adam(W) lr 2e-4, weight decay 1e-5, teacher momentum
0.9999 with a cosine schedule to 1 (``mm_sche``), teacher temperature 0.1, consistency
weight 0.1 (``cl_alpha``), high-score ratio with a random share 0.5 (``mask_ratio_hr``)
and its cosine decay (``mrh_sche``), student init ``fc``, plain cross-entropy, patience 30
(CAMELYON16) / 20 (TCGA) with no stop before epoch 70 (``stop_epoch``)) are the
reference's. The per-row mask ratios are recalled from the README commands and marked
``# recalled`` where they may be off by a step of the grid the paper searched; the
journal's recycle settings (k 1, merge momentum 0.9998, merge ratio) likewise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from slidescope.models.training.config import MHIMConfig, TrainingConfig, TrainingConfigError

_COMMON: dict[str, Any] = {
    "method": "mhim",
    "model_config": "reference",
    "lr": 2e-4,
    "weight_decay": 1e-5,
    "balance": "none",  # the reference trains with plain, unweighted cross-entropy
    "epochs": 200,
    "min_epochs": 70,
    "selection_metric": "auc",
    "mhim.momentum": 0.9999,
    "mhim.momentum_final": 1.0,
    "mhim.teacher_temperature": 0.1,
    "mhim.student_temperature": 1.0,
    "mhim.consistency_weight": 0.1,
    "mhim.mask_ratio_high_random": 0.5,
    "mhim.mask_ratio_high_decay": True,
    "mhim.teacher_source": "plain",
    "mhim.init_student": "fc",
    "mhim.recycle": False,  # the ICCV version has no recycle network
}

_C16 = {"patience": 30}
_TCGA = {"patience": 20}

#: the journal version (MHIM-v2): class-aware instance probability as the mask score and
#: the global recycle network over the randomly masked instances
_JOURNAL: dict[str, Any] = {
    "mhim.mask_score": "cls_prob",
    "mhim.recycle": True,
    "mhim.recycle_tokens": 1,  # merge_k
    "mhim.recycle_momentum": 0.9998,  # merge_mm
    "mhim.recycle_heads": 8,
    "mhim.recycle_dropout": 0.1,
    "mhim.recycle_source": "student",
    "mhim.merge_ratio": 0.2,  # recalled
    "mhim.mask_ratio_random": 0.7,  # recalled
}

PRESETS: dict[str, dict[str, Any]] = {
    "iccv-camelyon16-abmil": {
        **_COMMON, **_C16, "model": "abmil",
        "mhim.mask_ratio_high": 0.01, "mhim.mask_ratio_low": 0.8,  # recalled
        "mhim.mask_ratio_random": 0.0,
    },
    "iccv-camelyon16-transmil": {
        **_COMMON, **_C16, "model": "transmil",
        "mhim.mask_ratio_high": 0.03, "mhim.mask_ratio_low": 0.0,  # recalled
        "mhim.mask_ratio_random": 0.0,
    },
    "iccv-tcga-nsclc-abmil": {
        **_COMMON, **_TCGA, "model": "abmil",
        "mhim.mask_ratio_high": 0.02, "mhim.mask_ratio_low": 0.2,  # recalled
        "mhim.mask_ratio_random": 0.0,
    },
    "iccv-tcga-nsclc-transmil": {
        **_COMMON, **_TCGA, "model": "transmil",
        "mhim.mask_ratio_high": 0.02, "mhim.mask_ratio_low": 0.0,  # recalled
        "mhim.mask_ratio_random": 0.0,
    },
    "journal-camelyon16-abmil": {
        **_COMMON, **_C16, **_JOURNAL, "model": "abmil",
        "mhim.mask_ratio_high": 0.01, "mhim.mask_ratio_low": 0.0,
    },
    "journal-camelyon16-transmil": {
        **_COMMON, **_C16, **_JOURNAL, "model": "transmil",
        "mhim.mask_ratio_high": 0.03, "mhim.mask_ratio_low": 0.0,
    },
    "journal-tcga-nsclc-abmil": {
        **_COMMON, **_TCGA, **_JOURNAL, "model": "abmil",
        "mhim.mask_ratio_high": 0.02, "mhim.mask_ratio_low": 0.0,
    },
}  # fmt: skip


def preset_names() -> list[str]:
    """Every preset, in a stable order."""
    return sorted(PRESETS)


def describe(name: str) -> str:
    """One line of ``train --help`` for the preset ``name``."""
    settings = PRESETS[name]
    mhim = {k[5:]: v for k, v in settings.items() if k.startswith("mhim.")}
    return (
        f"{name}: {settings['model']} (reference), r_h {mhim['mask_ratio_high']}, "
        f"r_l {mhim.get('mask_ratio_low', 0.0)}, r_r {mhim.get('mask_ratio_random', 0.0)}, "
        f"score {mhim.get('mask_score', 'attention')}"
        + (f", recycle k {mhim['recycle_tokens']}" if mhim.get("recycle") else "")
    )


def apply_preset(config: TrainingConfig, name: str, explicit: set[str]) -> TrainingConfig:
    """``config`` with the preset's values, except for the settings in ``explicit``.

    Parameters
    ----------
    config : TrainingConfig
        The run as the user described it.
    name : str
        A key of :data:`PRESETS`.
    explicit : set of str
        Settings the user gave (``"epochs"``, ``"mhim.mask_ratio_high"``...): kept.

    Raises
    ------
    TrainingConfigError
        For an unknown preset, listing the known ones.
    """
    if name not in PRESETS:
        raise TrainingConfigError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    top: dict[str, Any] = {"preset": name}
    mhim: dict[str, Any] = {}
    for key, value in PRESETS[name].items():
        if key in explicit:
            continue
        if key.startswith("mhim."):
            mhim[key[5:]] = value
        else:
            top[key] = value
    if "min_epochs" in top:
        # a preset's selection floor never exceeds the epochs the run has (--epochs 7 with
        # the journal presets' 70: every epoch may be selected)
        top["min_epochs"] = min(top["min_epochs"], top.get("epochs", config.epochs))
    return dataclasses.replace(config, mhim=dataclasses.replace(config.mhim, **mhim), **top)


def explicit_settings(config: TrainingConfig, defaults: TrainingConfig) -> set[str]:
    """Names of the settings where ``config`` differs from ``defaults``."""
    changed = {
        f.name
        for f in dataclasses.fields(TrainingConfig)
        if f.name != "mhim" and getattr(config, f.name) != getattr(defaults, f.name)
    }
    changed |= {
        f"mhim.{f.name}"
        for f in dataclasses.fields(MHIMConfig)
        if getattr(config.mhim, f.name) != getattr(defaults.mhim, f.name)
    }
    return changed
