"""Adding a class to a trained model: one more output row, the old ones kept."""

from __future__ import annotations

from slidescope.models.mil.base import MILModel
from slidescope.models.mil.registry import create_model
from slidescope.models.training.finetune_settings import FinetuneError


def grow_classes(model: MILModel, new_names: list[str]) -> MILModel:
    """A copy of ``model`` with one more output per new class; old outputs kept as they are.

    Every weight whose first dimension counts the classes gains rows: the new class's row
    starts from the fresh initialisation of a model of the larger size (its bias at the
    mean of the old biases, so that it starts neither favoured nor silenced).
    """
    old = model.n_classes
    grown = create_model(model.arch, model.in_dim, old + len(new_names), **model.arch_kwargs)
    state = model.state_dict()
    target = grown.state_dict()
    for key, value in target.items():
        source = state.get(key)
        if source is None:
            raise FinetuneError(f"cannot add a class to a {model.arch} model: {key} is new")
        if source.shape == value.shape:
            target[key] = source.clone()
        elif (
            source.shape[0] == old
            and value.shape[0] == old + len(new_names)
            and (source.shape[1:] == value.shape[1:])
        ):
            fresh = value.clone()
            fresh[:old] = source
            if source.ndim == 1:
                fresh[old:] = source.mean()
            target[key] = fresh
        else:
            raise FinetuneError(
                f"cannot add a class to a {model.arch} model: {key} changes shape from "
                f"{tuple(source.shape)} to {tuple(value.shape)} in another way than one row "
                "per class"
            )
    grown.load_state_dict(target)
    return grown
