"""The MHIM-MIL reference code's baselines, as keyword arguments of our models.

MHIM-MIL (Tang et al., ICCV 2023; github DearCaat/MHIM-MIL) compares plain and MHIM
training of the *same* baseline networks, so a faithful comparison needs those networks
exactly. Each entry below is what the reference code builds for 1,024-d features
(``--model_config reference`` or a ``--preset`` of ``train`` uses them):

* ``abmil`` (the reference's ``DAttention``): a 512-d ReLU embedding with dropout 0.25,
  attention ``Linear(512, 128, bias=False) -> ReLU -> Linear(128, 1, bias=False)`` without
  dropout, a linear classifier, xavier-normal initialisation with zero biases;
* ``transmil``: 512-d tokens, 8 heads, 256 Nyström landmarks, attention dropout 0.1, a
  512-d ReLU embedding with dropout 0.25, masking scores from the first layer's
  class-token attention (``--attn_layer 0`` of the published commands);
* ``dsmil``: 512-d, ``passing_v`` on, as the ICCV code (``v1`` branch) trains and
  predicts it: the loss ``0.5 * CE(bag) + 0.5 * CE(max-instance)``
  (``v1:main.py:529-531``) and the prediction ``0.5 * softmax(bag) + 0.5 *
  softmax(max-instance)`` (``v1:main.py:647-649``). The journal code instead trains and
  predicts ``0.5 * (bag + max)`` logits alone (``m:engines/common_mil.py:26-28,66-67``):
  ``fusion="logits"``, ``bag_loss_weight=1``, ``instance_loss_weight=0``.

Settings not in this table keep our defaults, which differ where the comments of each
model say why.
"""

from __future__ import annotations

from typing import Any

REFERENCE_KWARGS: dict[str, dict[str, Any]] = {
    "abmil": {
        "hidden_dim": 512,
        "attention_dim": 128,
        "dropout": 0.25,
        "attention_act": "relu",
        "attention_bias": False,
        "attention_dropout": 0.0,
        "init": "xavier",
    },
    "transmil": {
        "hidden_dim": 512,
        "n_heads": 8,
        "n_landmarks": 256,
        "dropout": 0.25,
        "attention_dropout": 0.1,
        "attention_layer": 0,
    },
    "dsmil": {
        "hidden_dim": 512,
        "q_dim": 128,
        "dropout": 0.25,
        "passing_v": True,
        "fusion": "probabilities",
        "bag_loss_weight": 0.5,
        "instance_loss_weight": 0.5,
    },
}

MODEL_CONFIGS = ("default", "reference")


def model_kwargs(model: str, config: str, overrides: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments of ``model`` under ``config``, with the user's ``overrides`` on top.

    Raises
    ------
    ValueError
        When ``config`` is unknown, or ``reference`` is asked of a model the reference
        code does not have.
    """
    if config == "default":
        return dict(overrides)
    if config != "reference":
        raise ValueError(f"model configuration must be one of {', '.join(MODEL_CONFIGS)}")
    if model not in REFERENCE_KWARGS:
        raise ValueError(
            f"no reference configuration of {model!r}; the reference code's baselines are "
            f"{', '.join(sorted(REFERENCE_KWARGS))}"
        )
    return {**REFERENCE_KWARGS[model], **overrides}
