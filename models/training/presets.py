"""Named settings of the MHIM-MIL papers, for ``train --preset NAME``.

The reference is the authors' code, github DearCaat/MHIM-MIL: branch ``v1`` (commit
5377eb60) for the ICCV 2023 paper, ``master`` (commit 9d0c91ab) for the journal version.
Citations below read ``v1:path:line`` and ``m:path:line``.

* **ICCV presets** are the published commands of ``v1:README.md:53-86``, one per table
  row: the settings each command types, and ``v1:main.py``'s defaults for the rest.
* **Journal presets** are the one command of ``m:README.md:129-151`` with the defaults of
  ``m:options.py`` and ``m:config/feat_cls.yaml``. That README publishes grids, not
  per-row values (``mask_ratio_h`` {0.01, 0.03, 0.05}, ``merge_ratio`` {0.8, 0.9},
  ``merge_k`` {1, 5, 10}, ``m:README.md:124-127``); a preset takes the first value of each
  grid. It has no CAMELYON16 command: the ``journal-camelyon16-*`` presets are the journal
  command applied to CAMELYON16 with the ICCV command's ``mask_ratio_h`` (which is in the
  grid).

A value the user gives explicitly on the command line wins over the preset's (model
arguments are merged, the user's on top). What no preset can make equal to the reference
(held-out validation slides instead of the test set, TransMIL's exact attention, ...)
is listed in ``docs/mhim-reference.md``, "Differences that remain".
"""

from __future__ import annotations

import dataclasses
from typing import Any

from slidescope.models.training.config import MHIMConfig, TrainingConfig, TrainingConfigError

#: what every ICCV command leaves at ``v1:main.py``'s defaults, and what they all type
_ICCV: dict[str, Any] = {
    "method": "mhim",
    "model_config": "reference",  # MHIM's own encoders, v1:modules/mhim.py:47-65
    "optimizer": "adam",  # v1:main.py:765 (--opt adam), :246-250
    "lr": 2e-4,  # v1:main.py:769
    "weight_decay": 1e-5,  # v1:main.py:772
    "lr_schedule": "epoch",  # CosineAnnealingLR(T_max=num_epoch, eta_min=0), v1:main.py:252-253
    "min_lr": 0.0,
    "balance": "none",  # nn.CrossEntropyLoss() without class weights, v1:main.py:241-244
    "epochs": 200,  # v1:main.py:759
    "min_epochs": 0,  # the best epoch of all is kept, v1:main.py:397-413
    "selection_metric": "auc",  # v1:main.py:397
    "seed": 2021,  # --seed=2021 in every command (the random streams differ anyway)
    "mhim.mask_score": "attention",
    "mhim.mask_ratio_high_decay": True,  # --mrh_sche in every command
    "mhim.momentum": 0.9999,  # v1:main.py:810
    "mhim.teacher_temperature": 0.1,  # v1:main.py:805
    "mhim.student_temperature": 1.0,  # v1:modules/mhim.py:33
    "mhim.teacher_source": "plain",  # --teacher_init: a plain run's checkpoint per fold
    "mhim.init_student": "fc",  # --init_stu_type=fc in every command
    "mhim.teacher_mode": "train",  # model_tea.train() every epoch, v1:main.py:496-497
    "mhim.recycle": False,  # no recycle network on v1
}

#: patience and earliest stop per data set, v1:main.py:263 (stop_epoch: --max_epoch 130,
#: v1:main.py:761, on CAMELYON16; 70 otherwise)
_ICCV_CAMELYON16: dict[str, Any] = {"patience": 30, "stop_epoch": 130}
#: the TCGA commands hold out val_ratio 0.13 of each training fold, v1:README.md:54
_ICCV_TCGA: dict[str, Any] = {"patience": 20, "stop_epoch": 70, "val_fraction": 0.13}


def _iccv(
    data: dict[str, Any],
    model: str,
    high: float,
    high_random: float,
    low: float,
    random: float,
    alpha: float,
    mm_sche: bool,
) -> dict[str, Any]:
    """One ICCV command: ``--mask_ratio_h``, ``--mask_ratio_hr`` (1.0 when not typed),
    ``--mask_ratio_l``, ``--mask_ratio``, ``--cl_alpha`` and ``--mm_sche`` (a cosine of
    the momentum to ``--mm_final`` 1.0, ``v1:main.py:169-170,811``)."""
    return {
        **_ICCV,
        **data,
        "model": model,
        "mhim.mask_ratio_high": high,
        "mhim.mask_ratio_high_random": high_random,
        "mhim.mask_ratio_low": low,
        "mhim.mask_ratio_random": random,
        "mhim.consistency_weight": alpha,
        "mhim.momentum_final": 1.0 if mm_sche else None,
    }


#: the journal command (m:README.md:134-150) and the defaults it does not override
_JOURNAL: dict[str, Any] = {
    "method": "mhim",
    "model_config": "reference",
    "model_kwargs": {"act": "gelu"},  # m:config/feat_cls.yaml:6
    "optimizer": "adam",  # m:config/feat_cls.yaml:3; m:train_utils.py:58-65
    "lr": 2e-4,  # m:config/feat_cls.yaml:2
    "weight_decay": 1e-5,  # m:config/feat_cls.yaml:4
    "lr_schedule": "epoch",  # timm cosine per epoch, m:engines/base_engine.py:229-230
    "min_lr": 1e-7,  # m:train_utils.py:70-71
    "balance": "none",  # m:train_utils.py:41-44
    "epochs": 200,  # m:options.py:43
    "patience": 20,  # m:options.py:48
    "stop_epoch": 100,  # min(max_epoch 100, num_epoch), m:config/feat_cls.yaml:5, m:options.py:341
    "min_epochs": 0,
    "selection_metric": "auc",  # two classes, m:options.py:338-339
    "seed": 2021,  # m:config/feat_cls.yaml:11
    "mhim.mask_score": "cls_prob",  # --attn2score
    "mhim.mask_ratio_high_random": 1.0,  # m:options.py:123
    "mhim.mask_ratio_high_decay": False,  # --mrh_sche not typed, m:options.py:124
    "mhim.mask_ratio_low": 0.0,  # m:options.py:121
    "mhim.mask_ratio_random": 0.0,  # m:options.py:120; the merge split is the random part
    "mhim.consistency_weight": 0.5,  # --aux_alpha=0.5
    "mhim.momentum": 0.9997,  # m:options.py:129
    "mhim.momentum_final": None,  # --mm_sche not typed, m:options.py:130
    "mhim.teacher_temperature": 0.1,  # m:options.py:127
    "mhim.student_temperature": 1.0,  # m:modules/mhim.py:100
    "mhim.recycle": True,  # --merge_enable
    "mhim.recycle_tokens": 1,  # --merge_k: first of the grid {1, 5, 10}
    "mhim.merge_ratio": 0.8,  # --merge_ratio: first of the grid {0.8, 0.9}
    "mhim.recycle_momentum": 0.9999,  # --merge_mm=0.9999
    "mhim.recycle_heads": 8,  # m:modules/mhim_modules/merge.py:74
    "mhim.recycle_dropout": 0.1,  # m:modules/mhim_modules/merge.py:74
    "mhim.recycle_source": "student",  # m:modules/mhim.py:335-351
    "mhim.teacher_source": "plain",  # --teacher_init
    "mhim.init_student": "none",  # forced, m:options.py:292
    "mhim.teacher_mode": "train",  # model_ema.train(), m:engines/base_engine.py:37-38
}


def _journal(model: str, high: float) -> dict[str, Any]:
    """The journal command for ``--baseline`` ``model`` and ``--mask_ratio_h`` ``high``."""
    return {**_JOURNAL, "model": model, "mhim.mask_ratio_high": high}


PRESETS: dict[str, dict[str, Any]] = {
    # v1:README.md:57-60
    "iccv-camelyon16-abmil": _iccv(_ICCV_CAMELYON16, "abmil", 0.01, 0.5, 0.0, 0.5, 0.1, False),
    # v1:README.md:68-71 (--attn_layer=0: the reference TransMIL scores with layer 0)
    "iccv-camelyon16-transmil": _iccv(
        _ICCV_CAMELYON16, "transmil", 0.03, 0.5, 0.8, 0.0, 0.1, True
    ),
    # v1:README.md:79-82 ("same hyper-param with ABMIL")
    "iccv-camelyon16-dsmil": _iccv(_ICCV_CAMELYON16, "dsmil", 0.01, 0.5, 0.0, 0.5, 0.1, False),
    # v1:README.md:61-64
    "iccv-tcga-nsclc-abmil": _iccv(_ICCV_TCGA, "abmil", 0.02, 1.0, 0.2, 0.7, 0.5, True),
    # v1:README.md:72-75
    "iccv-tcga-nsclc-transmil": _iccv(_ICCV_TCGA, "transmil", 0.02, 1.0, 0.2, 0.6, 0.5, False),
    # v1:README.md:83-86
    "iccv-tcga-nsclc-dsmil": _iccv(_ICCV_TCGA, "dsmil", 0.02, 1.0, 0.2, 0.7, 0.5, True),
    # no CAMELYON16 command on master: the journal command with the ICCV row's r_h
    "journal-camelyon16-abmil": _journal("abmil", 0.01),
    "journal-camelyon16-transmil": _journal("transmil", 0.03),
    # m:README.md:111,134-150 (nsclc), r_h the first of the grid
    "journal-tcga-nsclc-abmil": _journal("abmil", 0.01),
    "journal-tcga-nsclc-transmil": _journal("transmil", 0.01),
}


#: presets without a published command of their own (see the module docstring)
_UNPUBLISHED = {"journal-camelyon16-abmil", "journal-camelyon16-transmil"}


def preset_names() -> list[str]:
    """Every preset, in a stable order."""
    return sorted(PRESETS)


def describe(name: str) -> str:
    """One line of ``train --help`` for the preset ``name``."""
    settings = PRESETS[name]
    mhim = {k[5:]: v for k, v in settings.items() if k.startswith("mhim.")}
    act = settings.get("model_kwargs", {}).get("act")
    momentum = f"mm {mhim['momentum']}" + (
        f" to {mhim['momentum_final']}" if mhim["momentum_final"] is not None else ""
    )
    return (
        f"{name}: {settings['model']} (reference{', ' + act if act else ''}), "
        f"{settings['optimizer']}, r_h {mhim['mask_ratio_high']}, "
        f"r_hr {mhim['mask_ratio_high_random']}, r_l {mhim['mask_ratio_low']}, "
        f"r_r {mhim['mask_ratio_random']}, alpha {mhim['consistency_weight']}, {momentum}, "
        f"score {mhim['mask_score']}, stop_epoch {settings['stop_epoch']}"
        + (
            f", recycle k {mhim['recycle_tokens']} merge_ratio {mhim['merge_ratio']}"
            if mhim["recycle"]
            else ""
        )
        + (
            " (no published command: the journal's with the ICCV r_h)"
            if name in _UNPUBLISHED
            else ""
        )
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
        Settings the user gave (``"epochs"``, ``"mhim.mask_ratio_high"``...): kept. The
        user's model arguments go on top of the preset's.

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
        if key == "model_kwargs":
            top[key] = {**value, **config.model_kwargs}
        elif key in explicit:
            continue
        elif key.startswith("mhim."):
            mhim[key[5:]] = value
        else:
            top[key] = value
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
