"""``train`` options: presets fill only what the user did not type; mistakes fail early."""

from __future__ import annotations

import pytest
from slidescope.app.cli import build_parser, main
from slidescope.app.cli.commands.train import config_from_args

BASE = ["train", "--features", "nowhere", "--labels", "none.csv", "--out", "m.safetensors"]


def _config(*extra: str):  # type: ignore[no-untyped-def]
    return config_from_args(build_parser().parse_args([*BASE, *extra]))


def test_preset_fills_the_rest_and_typed_options_win() -> None:
    config = _config("--preset", "iccv-camelyon16-abmil", "--method", "plain", "--epochs", "5")
    assert config.method == "plain"  # typed, although it is the option's default
    assert config.epochs == 5
    assert config.model_config == "reference"
    assert config.mhim.mask_ratio_low == 0.0  # v1:README.md:60, --mask_ratio_l=0.
    assert config.mhim.mask_ratio_random == 0.5
    assert (config.optimizer, config.lr_schedule, config.stop_epoch) == ("adam", "epoch", 130)
    assert config.mhim.teacher_mode == "train"
    assert config.preset == "iccv-camelyon16-abmil"
    plain = _config()
    assert plain.preset is None
    assert plain.model_config == "default"
    assert (plain.optimizer, plain.lr_schedule, plain.min_lr, plain.stop_epoch) == (
        "adamw", "step", None, None,
    )  # fmt: skip


def test_typed_optimisation_options_win_over_a_preset() -> None:
    config = _config(
        "--preset", "journal-tcga-nsclc-abmil", "--optimizer", "adamw", "--lr-schedule",
        "step", "--min-lr", "0", "--stop-epoch", "5", "--teacher-mode", "eval",
        "--model-arg", "dropout=0.1",
    )  # fmt: skip
    assert (config.optimizer, config.lr_schedule, config.min_lr) == ("adamw", "step", 0.0)
    assert config.stop_epoch == 5
    assert config.mhim.teacher_mode == "eval"
    assert config.mhim.merge_ratio == 0.8  # the preset's
    # model arguments merge: the preset's GELU stays beside the typed dropout
    assert config.model_kwargs == {"act": "gelu", "dropout": 0.1}


def test_help_lists_presets_and_models(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = "".join(capsys.readouterr().out.split())  # argparse wraps at hyphens
    from slidescope.models.training.presets import preset_names

    for name in preset_names():
        assert name in text
    assert "instance_max" in text


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "resnet"], "unknown MIL model 'resnet'; known MIL models: abmil"),
        (["--model-arg", "hidden_dim=0"], "hidden_dim must be a whole number"),
        (["--model-arg", "hidden_dim=1e7"], "65,536"),
        (["--model-arg", "hiden_dim=8"], "its arguments are: hidden_dim"),
        (["--preset", "iccv"], "unknown preset 'iccv'; presets: iccv-camelyon16-abmil"),
        (["--min-lr", "1"], "min_lr must be in [0, lr=0.0002]"),
        (["--stop-epoch", "-1"], "stop_epoch must be >= 0"),
        (["--method", "mhim", "--folds", "3", "--teacher-init", "x.safetensors"], "{fold}"),
    ],
)
def test_mistakes_fail_before_any_data_loads(extra, message, capsys) -> None:
    # The features folder does not exist: the error must be about the setting.
    assert main([*BASE, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
