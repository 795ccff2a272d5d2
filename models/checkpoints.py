"""Model checkpoints: ``.safetensors`` files with SlideScope's JSON metadata, and safe loading.

A checkpoint holds the student's weights (the model used at inference), optionally the
MHIM teacher's weights under the ``teacher.`` prefix, and one metadata key,
``"slidescope"``, whose value is the JSON of :class:`CheckpointMeta`. Nothing here ever
unpickles arbitrary objects: ``.pt``/``.pth``/``.bin`` files from users are read with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from slidescope.models.errors import CheckpointError
from slidescope.models.mil.base import MILModel
from slidescope.models.mil.registry import create_model
from torch import Tensor, nn

FORMAT_VERSION = 1
METADATA_KEY = "slidescope"
TEACHER_PREFIX = "teacher."
PLAIN_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin")


@dataclass
class CheckpointMeta:
    """What a checkpoint says about its model and the features it expects.

    Attributes
    ----------
    architecture : str
        Registry name of the model (``create_model`` rebuilds it).
    in_dim : int
        Feature dimension the model reads.
    n_classes : int
        Number of outputs (classes, or hazard bins for survival).
    arch_kwargs : dict
        Keyword arguments of ``create_model``.
    class_names : list of str
        Name of each class, in output order.
    task : str
        ``"classification"`` or ``"survival"``.
    extractor : str or None
        Name of the patch feature extractor the features must come from.
    patch_size : int or None
        Patch size in pixels at ``target_mpp``.
    target_mpp : float or None
        Resolution of the patches, µm per pixel.
    training : dict
        Training settings (method, mask ratios, epochs, seed, ...).
    metrics : dict
        Validation / test metrics.
    threshold : float or None
        Decision threshold chosen on validation data.
    feature_stats : dict
        Statistics of the training features (:func:`slidescope.models.ood.feature_stats`)
        that tell whether a slide is outside the model's experience; empty for models
        trained before they were kept.
    created : str
        ISO 8601 time of creation (UTC).
    format_version : int
        Version of this metadata layout.
    """

    architecture: str
    in_dim: int
    n_classes: int
    arch_kwargs: dict[str, Any] = field(default_factory=dict)
    class_names: list[str] = field(default_factory=list)
    task: str = "classification"
    extractor: str | None = None
    patch_size: int | None = None
    target_mpp: float | None = None
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    threshold: float | None = None
    feature_stats: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    format_version: int = FORMAT_VERSION

    def to_json(self) -> str:
        """The metadata as a JSON string."""
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "checkpoint") -> CheckpointMeta:
        """Parse metadata written by :meth:`to_json` (unknown keys are ignored)."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise CheckpointError(
                f"{source}: its SlideScope metadata is not JSON ({error})"
            ) from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{source}: its SlideScope metadata is not a JSON object")
        version = data.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise CheckpointError(
                f"{source}: checkpoint format version {version} is newer than this SlideScope "
                f"reads ({FORMAT_VERSION}); update SlideScope"
            )
        known = {f.name for f in dataclasses.fields(cls)}
        missing = {"architecture", "in_dim", "n_classes"} - data.keys()
        if missing:
            raise CheckpointError(f"{source}: metadata lacks {', '.join(sorted(missing))}")
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def for_model(cls, model: MILModel, **kwargs: Any) -> CheckpointMeta:
        """Metadata whose architecture fields are taken from a registry-built model."""
        return cls(
            architecture=model.arch,
            in_dim=model.in_dim,
            n_classes=model.n_classes,
            arch_kwargs=dict(model.arch_kwargs),
            **kwargs,
        )


@dataclass
class LoadedCheckpoint:
    """A rebuilt model (student), its metadata and, if saved, the MHIM teacher."""

    model: MILModel
    meta: CheckpointMeta
    teacher: MILModel | None = None


def _state(module: nn.Module) -> dict[str, Tensor]:
    # safetensors refuses shared or non-contiguous storage: store independent copies.
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def _require_suffix(path: Path) -> None:
    if path.suffix != ".safetensors":
        raise CheckpointError(
            f"{path.name}: checkpoints are saved as .safetensors only; name it "
            f"{path.with_suffix('.safetensors').name}"
        )


def save_checkpoint(
    path: str | os.PathLike[str],
    model: MILModel,
    meta: CheckpointMeta,
    teacher: nn.Module | None = None,
) -> Path:
    """Write ``model`` (and ``teacher``) with ``meta`` to a ``.safetensors`` file, atomically.

    Parameters
    ----------
    path : path-like
        Destination; must end in ``.safetensors``.
    model : MILModel
        The student, used at inference.
    meta : CheckpointMeta
        Its metadata (architecture, input dim, class count must match the model).
    teacher : nn.Module, optional
        The MHIM teacher (same architecture as ``model``), stored under the ``teacher.``
        prefix.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    _require_suffix(path)
    if (meta.architecture, meta.in_dim, meta.n_classes) != (
        model.arch,
        model.in_dim,
        model.n_classes,
    ):
        raise CheckpointError(
            f"{path.name}: metadata describes {meta.architecture} ({meta.in_dim} features, "
            f"{meta.n_classes} classes) but the model is {model.arch} ({model.in_dim} "
            f"features, {model.n_classes} classes)"
        )
    tensors = _state(model)
    if teacher is not None:
        tensors.update({TEACHER_PREFIX + k: v for k, v in _state(teacher).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp_name, metadata={METADATA_KEY: meta.to_json()})
        os.replace(tmp_name, path)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)
    return path


def read_meta(path: str | os.PathLike[str]) -> CheckpointMeta:
    """Read only the metadata of a checkpoint (no weights)."""
    path = Path(path)
    _require_suffix(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path.name}: not a readable safetensors file ({error})") from None
    if METADATA_KEY not in metadata:
        raise CheckpointError(
            f"{path.name}: a safetensors file without SlideScope metadata; it is not a "
            "SlideScope checkpoint (load bare weights with load_state_dict_file)"
        )
    return CheckpointMeta.from_json(metadata[METADATA_KEY], source=path.name)


def _split(tensors: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    student = {k: v for k, v in tensors.items() if not k.startswith(TEACHER_PREFIX)}
    teacher = {
        k[len(TEACHER_PREFIX) :]: v for k, v in tensors.items() if k.startswith(TEACHER_PREFIX)
    }
    return student, teacher


def _load_strict(model: nn.Module, state: dict[str, Tensor], source: str, what: str) -> None:
    """Load ``state`` into ``model`` or raise a CheckpointError saying what differs."""
    expected = model.state_dict()
    missing = sorted(expected.keys() - state.keys())
    unexpected = sorted(state.keys() - expected.keys())
    shapes = [
        f"{k}: expected {tuple(expected[k].shape)}, found {tuple(state[k].shape)}"
        for k in sorted(expected.keys() & state.keys())
        if expected[k].shape != state[k].shape
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} weights ({', '.join(missing[:5])})")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)} weights ({', '.join(unexpected[:5])})")
    if shapes:
        problems.append("shape mismatch: " + "; ".join(shapes[:5]))
    if problems:
        raise CheckpointError(f"{source}: its weights do not fit {what}: " + "; ".join(problems))
    model.load_state_dict(state, strict=True)


def load_checkpoint(path: str | os.PathLike[str], device: str = "cpu") -> LoadedCheckpoint:
    """Rebuild the model of a checkpoint and load its weights strictly.

    Parameters
    ----------
    path : path-like
        A ``.safetensors`` checkpoint written by :func:`save_checkpoint`.
    device : str
        Where to put the model(s).

    Returns
    -------
    LoadedCheckpoint
        The student in eval mode, the metadata and the teacher (or None).
    """
    path = Path(path)
    meta = read_meta(path)
    try:
        student_state, teacher_state = _split(load_file(str(path), device="cpu"))
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"{path.name}: cannot read its weights ({error})") from None

    def build() -> MILModel:
        try:
            return create_model(meta.architecture, meta.in_dim, meta.n_classes, **meta.arch_kwargs)
        except (ValueError, TypeError) as error:
            raise CheckpointError(f"{path.name}: cannot rebuild its model: {error}") from None

    what = f"{meta.architecture} (in_dim={meta.in_dim}, n_classes={meta.n_classes})"
    model = build()
    _load_strict(model, student_state, path.name, what)
    teacher = None
    if teacher_state:
        teacher = build()
        _load_strict(teacher, teacher_state, path.name, f"the teacher {what}")
        teacher.to(device).eval()
    return LoadedCheckpoint(model=model.to(device).eval(), meta=meta, teacher=teacher)


def load_into(model: MILModel, path: str | os.PathLike[str]) -> CheckpointMeta:
    """Load a checkpoint's student weights into an existing ``model``.

    Raises :class:`CheckpointError` naming both sides when the architecture or the input
    dimension differ, or when weights are missing, unexpected or of another shape.

    Returns
    -------
    CheckpointMeta
        The checkpoint's metadata.
    """
    path = Path(path)
    meta = read_meta(path)
    if meta.architecture != model.arch:
        raise CheckpointError(
            f"{path.name}: the checkpoint is a {meta.architecture!r} model, expected "
            f"{model.arch!r}"
        )
    if meta.in_dim != model.in_dim:
        raise CheckpointError(
            f"{path.name}: the checkpoint reads {meta.in_dim} features per instance, the "
            f"model expects {model.in_dim}"
        )
    student_state, _ = _split(load_file(str(path), device="cpu"))
    device = next(iter(model.state_dict().values())).device
    _load_strict(
        model,
        {k: v.to(device) for k, v in student_state.items()},
        path.name,
        f"{model.arch} (in_dim={model.in_dim}, n_classes={model.n_classes})",
    )
    return meta


def load_state_dict_file(path: str | os.PathLike[str]) -> dict[str, Tensor]:
    """Read a user's weights file without ever running code from it.

    ``.safetensors`` is read with safetensors; ``.pt``/``.pth``/``.bin`` with
    ``torch.load(weights_only=True)``, which refuses pickles that build arbitrary objects.

    Parameters
    ----------
    path : path-like
        The weights file.

    Returns
    -------
    dict of str to Tensor
        The tensors (a ``{"state_dict": ...}`` or ``{"model": ...}`` wrapper is unwrapped).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: weights file not found")
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        try:
            return load_file(str(path), device="cpu")
        except (SafetensorError, OSError) as error:
            raise CheckpointError(
                f"{path.name}: not a readable safetensors file ({error})"
            ) from None
    if suffix not in PLAIN_WEIGHT_SUFFIXES:
        raise CheckpointError(
            f"{path.name}: unknown weights format {suffix!r}; use .safetensors, .pt, .pth or .bin"
        )
    with path.open("rb") as f:
        head = f.read(2)
    # torch writes zip archives ("PK") or pickles (protocol >= 2 starts with 0x80): anything
    # else is damaged or another format, not a pickle that wants to run code.
    if not (head.startswith(b"PK") or head[:1] == b"\x80"):
        raise CheckpointError(
            f"{path.name}: cannot read weights: not a PyTorch weights file (neither a torch "
            "zip archive nor a pickle); give a .safetensors file or a plain PyTorch state dict"
        )
    try:
        data = torch.load(str(path), weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ValueError) as error:
        raise CheckpointError(
            f"{path.name}: not a plain weights file; it asks to run code or build objects "
            f"when unpickled, which SlideScope never does ({str(error).splitlines()[0]}). "
            "Convert it to .safetensors in a trusted environment."
        ) from None
    for wrapper in ("state_dict", "model", "model_state_dict", "module"):
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
            break
    if not isinstance(data, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in data.items()
    ):
        raise CheckpointError(
            f"{path.name}: holds no name -> tensor mapping (a state dict); found "
            f"{type(data).__name__}"
        )
    return dict(data)


def check_compatible(
    meta: CheckpointMeta, extractor: str | None, feature_dim: int, source: str
) -> None:
    """Refuse features that the checkpoint's model was not trained on.

    Parameters
    ----------
    meta : CheckpointMeta
        The checkpoint's metadata.
    extractor : str or None
        The features' extractor name (None when the feature file does not say; then only
        the dimension is checked).
    feature_dim : int
        The features' dimension.
    source : str
        The features' file (or folder) name, for the message.

    Raises
    ------
    CheckpointError
        Naming both the checkpoint's and the features' extractor or dimension.
    """
    if meta.extractor is not None and extractor is not None and meta.extractor != extractor:
        raise CheckpointError(
            f"{source}: features from extractor {extractor!r}, but the checkpoint "
            f"({meta.architecture}) was trained on {meta.extractor!r} features; extract "
            f"them again with {meta.extractor!r}"
        )
    if feature_dim != meta.in_dim:
        raise CheckpointError(
            f"{source}: features of dimension {feature_dim}, but the checkpoint "
            f"({meta.architecture}, extractor {meta.extractor!r}) expects {meta.in_dim}"
        )
