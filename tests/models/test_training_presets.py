"""Each preset against the reference code's published command (github DearCaat/MHIM-MIL).

The tables below are copied from the READMEs by hand, apart from the presets module, so
that a changed preset value fails here: ``v1:README.md`` (commit 5377eb60) for the ICCV
commands, ``m:README.md`` (commit 9d0c91ab) for the journal one. A setting a command does
not type takes the default of ``v1:main.py:742-812`` or ``m:options.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from slidescope.models.training.config import TrainingConfig
from slidescope.models.training.presets import PRESETS, apply_preset, describe, preset_names

#: preset -> (README lines, --mask_ratio_h, --mask_ratio_hr, --mask_ratio_l, --mask_ratio,
#: --cl_alpha, --mm_sche)
ICCV_COMMANDS = {
    "iccv-camelyon16-abmil": ("v1:README.md:58-60", 0.01, 0.5, 0.0, 0.5, 0.1, False),
    "iccv-tcga-nsclc-abmil": ("v1:README.md:62-64", 0.02, 1.0, 0.2, 0.7, 0.5, True),
    "iccv-camelyon16-transmil": ("v1:README.md:69-71", 0.03, 0.5, 0.8, 0.0, 0.1, True),
    "iccv-tcga-nsclc-transmil": ("v1:README.md:73-75", 0.02, 1.0, 0.2, 0.6, 0.5, False),
    "iccv-camelyon16-dsmil": ("v1:README.md:80-82", 0.01, 0.5, 0.0, 0.5, 0.1, False),
    "iccv-tcga-nsclc-dsmil": ("v1:README.md:84-86", 0.02, 1.0, 0.2, 0.7, 0.5, True),
}

#: what every ICCV command shares: typed (--mrh_sche, --init_stu_type=fc, --seed=2021)
#: or left at v1:main.py's defaults
ICCV_SHARED = {
    "method": "mhim",
    "model_config": "reference",
    "optimizer": "adam",  # --opt adam, v1:main.py:765
    "lr": 2e-4,  # v1:main.py:769
    "weight_decay": 1e-5,  # v1:main.py:772
    "lr_schedule": "epoch",  # CosineAnnealingLR(num_epoch, 0) per epoch, v1:main.py:253
    "min_lr": 0.0,
    "balance": "none",  # v1:main.py:243
    "epochs": 200,  # v1:main.py:759
    "min_epochs": 0,
    "selection_metric": "auc",
    "seed": 2021,
    "mhim.mask_score": "attention",
    "mhim.mask_ratio_high_decay": True,  # --mrh_sche
    "mhim.momentum": 0.9999,  # v1:main.py:810
    "mhim.teacher_temperature": 0.1,  # v1:main.py:805
    "mhim.init_student": "fc",  # --init_stu_type=fc
    "mhim.teacher_mode": "train",  # v1:main.py:496-497
    "mhim.recycle": False,
}

#: patience and stop_epoch, v1:main.py:263,761; TCGA's --val_ratio=0.13, v1:README.md:54
ICCV_DATA = {
    "camelyon16": {"patience": 30, "stop_epoch": 130},
    "tcga-nsclc": {"patience": 20, "stop_epoch": 70, "val_fraction": 0.13},
}

#: m:README.md:134-150 with the first value of each published grid (m:README.md:125-127)
JOURNAL_COMMAND = {
    "method": "mhim",
    "model_config": "reference",
    "model_kwargs": {"act": "gelu"},  # m:config/feat_cls.yaml:6
    "optimizer": "adam",  # m:config/feat_cls.yaml:3
    "lr": 2e-4,
    "weight_decay": 1e-5,
    "lr_schedule": "epoch",
    "min_lr": 1e-7,  # m:train_utils.py:71
    "balance": "none",
    "epochs": 200,  # m:options.py:43
    "patience": 20,  # m:options.py:48
    "stop_epoch": 100,  # m:config/feat_cls.yaml:5
    "min_epochs": 0,
    "selection_metric": "auc",
    "mhim.mask_score": "cls_prob",  # --attn2score
    "mhim.recycle": True,  # --merge_enable
    "mhim.recycle_momentum": 0.9999,  # --merge_mm=0.9999
    "mhim.consistency_weight": 0.5,  # --aux_alpha=0.5
    "mhim.merge_ratio": 0.8,  # grid {0.8, 0.9}
    "mhim.recycle_tokens": 1,  # grid {1, 5, 10}
    "mhim.mask_ratio_high_random": 1.0,  # m:options.py:123
    "mhim.mask_ratio_high_decay": False,  # m:options.py:124
    "mhim.mask_ratio_low": 0.0,  # m:options.py:121
    "mhim.mask_ratio_random": 0.0,  # m:options.py:120
    "mhim.momentum": 0.9997,  # m:options.py:129
    "mhim.momentum_final": None,  # m:options.py:130
    "mhim.init_student": "none",  # m:options.py:292
    "mhim.teacher_mode": "train",  # m:engines/base_engine.py:37-38
}

#: --mask_ratio_h, in the grid {0.01, 0.03, 0.05}; CAMELYON16 takes the ICCV row's value
JOURNAL_HIGH = {
    "journal-camelyon16-abmil": 0.01,
    "journal-camelyon16-transmil": 0.03,
    "journal-tcga-nsclc-abmil": 0.01,
    "journal-tcga-nsclc-transmil": 0.01,
}


def _applied(name: str) -> TrainingConfig:
    base = TrainingConfig(features=Path("f"), labels=Path("l.csv"), out=Path("m.safetensors"))
    return apply_preset(base, name, set())


def _value(config: TrainingConfig, key: str) -> object:
    if key.startswith("mhim."):
        return getattr(config.mhim, key[5:])
    return getattr(config, key)


def test_every_preset_is_a_published_command() -> None:
    assert set(PRESETS) == set(ICCV_COMMANDS) | set(JOURNAL_HIGH)


@pytest.mark.parametrize("name", sorted(ICCV_COMMANDS))
def test_iccv_preset_is_the_readme_command(name: str) -> None:
    lines, high, high_random, low, random, alpha, mm_sche = ICCV_COMMANDS[name]
    config = _applied(name)
    data = "camelyon16" if "camelyon16" in name else "tcga-nsclc"
    expected = {
        **ICCV_SHARED,
        **ICCV_DATA[data],
        "model": name.rsplit("-", 1)[1],
        "mhim.mask_ratio_high": high,
        "mhim.mask_ratio_high_random": high_random,
        "mhim.mask_ratio_low": low,
        "mhim.mask_ratio_random": random,
        "mhim.consistency_weight": alpha,
        "mhim.momentum_final": 1.0 if mm_sche else None,  # --mm_final 1.0, v1:main.py:811
    }
    for key, value in expected.items():
        assert _value(config, key) == value, f"{name}: {key} (published in {lines})"


@pytest.mark.parametrize("name", sorted(JOURNAL_HIGH))
def test_journal_preset_is_the_readme_command(name: str) -> None:
    config = _applied(name)
    expected = {
        **JOURNAL_COMMAND,
        "model": name.rsplit("-", 1)[1],
        "mhim.mask_ratio_high": JOURNAL_HIGH[name],
    }
    for key, value in expected.items():
        assert _value(config, key) == value, f"{name}: {key} (m:README.md:134-150)"


@pytest.mark.parametrize("name", preset_names())
def test_presets_are_valid_and_recorded(name: str) -> None:
    config = _applied(name)
    config.validate()
    meta = config.to_meta()
    assert meta["preset"] == name
    assert meta["optimizer"] == "adam"
    assert meta["teacher_mode"] == "train"
    assert name in describe(name)
