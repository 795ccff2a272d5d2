"""The extraction job: slide -> tissue -> patch grid -> features -> ``<slide_id>.h5``.

One job for every face (CLI, UI, batch). Patches are read by a bounded thread pool
(:class:`PatchReader`) a few batches ahead of the model, which runs batched under
``torch.inference_mode`` (channels-last, autocast bf16/fp16 and pinned, non-blocking
copies on CUDA, optional ``torch.compile``). Features go to the HDF5 file batch by batch;
a killed run resumes where it stopped, and up-to-date files are skipped.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from slidescope.app.analysis.feature_writer import FeatureWriter, is_up_to_date
from slidescope.app.analysis.patch_reader import PatchReader
from slidescope.app.analysis.patches import PatchGrid, make_patch_grid
from slidescope.app.analysis.roi import RoiError, load_roi
from slidescope.app.analysis.tissue import TissueParams, detect_tissue
from slidescope.app.jobs import Job, Progress
from slidescope.models.devices import (
    DeviceMemoryError,
    allocation_of,
    check_device_name,
    describe_device,
    resolve_device,
    usable_cores,
)
from slidescope.models.extractors import FeatureExtractor, check_extractor, create_extractor


@dataclass
class ExtractConfig:
    """How features are extracted (the CLI's options, with the same defaults).

    Attributes
    ----------
    extractor : str
        Registered extractor name (``builtin``, ``resnet50-trunc``, ``uni``, ...).
    weights : Path or None
        Local weights file of the extractor.
    target_mpp, patch_px, overlap_px : float, int, int
        Patch grid: µm/px, patch side and overlap in pixels at that resolution.
    min_tissue : float
        Minimum tissue share of a kept patch.
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
    batch_size : int
        Patches per forward pass.
    workers : int or None
        Patch reading threads; None: :func:`reading_threads` chooses by the device.
    slide_mpp : float or None
        Level-0 µm/px for slides that do not say it (overrides the file otherwise).
    compile : bool
        Run the extractor through ``torch.compile``.
    tissue : TissueParams
        Tissue detection settings.
    roi : Path or None
        GeoJSON region of interest (level-0 px) and how it combines with the tissue mask.
    allow_random_weights : bool
        Let an extractor that needs weights run with random ones (tests, benchmarks).
    """

    extractor: str = "builtin"
    weights: Path | None = None
    target_mpp: float = 0.5
    patch_px: int = 256
    overlap_px: int = 0
    min_tissue: float = 0.5
    device: str = "auto"
    batch_size: int = 64
    workers: int | None = None
    slide_mpp: float | None = None
    compile: bool = False
    tissue: TissueParams = field(default_factory=TissueParams)
    roi: Path | None = None
    roi_mode: Literal["replace", "intersect"] = "intersect"
    allow_random_weights: bool = False

    def __post_init__(self) -> None:
        # names are checked where the run is set up, before any slide (a cohort with a
        # typo fails once, in one line, not once per slide)
        check_device_name(self.device)
        check_extractor(self.extractor)


#: the most patch reading threads chosen for a GPU
MAX_GPU_READ_THREADS = 8


def reading_threads(asked: int | None, device: torch.device) -> int:
    """Patch reading threads: as asked, else by the device.

    On the CPU 2: the model's own threads want the cores. With a GPU every core but two, up
    to :data:`MAX_GPU_READ_THREADS`: decoding takes ~0.6 ms of a core per 224-px patch, so
    two threads feed ~3,000 patches/s, less than a ViT-L/14 runs in bf16 on a large GPU.
    """
    if asked is not None:
        return asked
    if device.type != "cuda":
        return 2
    return max(2, min(MAX_GPU_READ_THREADS, usable_cores() - 2))


def describe_run(config: ExtractConfig, device: torch.device) -> str:
    """One line on how an extraction runs: extractor, device, batch, threads, precision."""
    precision = ""
    if device.type == "cuda":
        precision = ", bf16" if torch.cuda.is_bf16_supported() else ", fp16"
    return (
        f"{config.extractor} on {describe_device(device)}: {config.batch_size} patches a "
        f"batch, {reading_threads(config.workers, device)} reading threads{precision}"
        f"{', compiled' if config.compile else ''}"
    )


def build_extractor(config: ExtractConfig, device: torch.device) -> FeatureExtractor:
    """The configured extractor on ``device``, channels-last, compiled if asked."""
    extractor = create_extractor(
        config.extractor,
        weights=config.weights,
        device=device,
        allow_random=config.allow_random_weights,
    )
    # nn.Module.to takes memory_format, which torch's type stubs leave out
    return extractor.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


def extract_features(
    slide_path: str | Path,
    out_dir: str | Path,
    config: ExtractConfig | None = None,
    extractor: FeatureExtractor | None = None,
) -> Job[Path]:
    """Extract the features of one slide into ``out_dir/<slide_id>.h5``.

    Parameters
    ----------
    slide_path : path
        The slide.
    out_dir : path
        Folder of the feature files.
    config : ExtractConfig, optional
        Settings; defaults as the CLI's.
    extractor : FeatureExtractor, optional
        An extractor already built from ``config`` (multi-slide runs share one).

    Returns
    -------
    Path of the feature file (written, or found up to date). When no patch has enough
    tissue the file holds an empty bag (no rows) and the last step says so.
    """
    from slidescope.app.slides import open_slide

    config = config or ExtractConfig()
    out_dir = Path(out_dir)
    with open_slide(slide_path, mpp=config.slide_mpp) as slide:
        identity = slide.identity
        path = out_dir / f"{identity.slide_id}.h5"
        yield Progress(0, None, f"{identity.slide_id}: tissue")
        # read once per process: a batch worker reuses it for every slide
        roi = None if config.roi is None else load_roi(config.roi)
        tissue = detect_tissue(slide, config.tissue, roi=roi, roi_mode=config.roi_mode)
        grid = make_patch_grid(
            slide, tissue, config.target_mpp, config.patch_px, config.overlap_px, config.min_tissue
        )
        if roi is not None and len(grid) == 0:
            raise RoiError(
                f"{roi.path}: the region of interest leaves no patch on {slide.path.name} "
                f"(none inside it has {config.min_tissue:.0%} tissue); check that it outlines "
                "tissue of this slide"
            )
        device = (
            extractor_device(extractor) if extractor is not None else resolve_device(config.device)
        )
        if extractor is None:
            extractor = build_extractor(config, device)
        settings = _settings(config, grid, identity.fingerprint, extractor)
        if is_up_to_date(path, settings):
            yield Progress(
                len(grid), len(grid), f"{identity.slide_id}: up to date", {"up_to_date": True}
            )
            return path
        attrs = _attrs(grid, identity, extractor)
        coords_attrs = {"patch_size": grid.patch_size_level0, "patch_level": grid.read_level}
        writer = FeatureWriter.open(path, attrs, settings, coords_attrs)
        try:
            todo = _remaining(grid.coords, writer.written_coords())
            if len(grid) == 0:
                yield Progress(
                    0, 0, f"{identity.slide_id}: no patch has {config.min_tissue:.0%} tissue"
                )
                return writer.finish()
            yield Progress(writer.count, len(grid), f"{identity.slide_id}: features")
            batch_size, threads = config.batch_size, reading_threads(config.workers, device)
            while True:
                runner = _ModelRunner(extractor, device, config.compile, batch_size)
                try:
                    with PatchReader(slide, grid, batch_size, threads) as reader:
                        for coords, features in runner.run(reader.batches(todo)):
                            writer.append(coords, features)
                            yield Progress(
                                writer.count, len(grid), f"{identity.slide_id}: features"
                            )
                    return writer.finish()
                except torch.OutOfMemoryError as error:
                    # what was written stays; the rest goes on in batches half as large
                    batch_size = _smaller_batch(batch_size, error, slide.path, extractor)
                torch.cuda.empty_cache()  # out of the handler: the error held the tensors
                todo = _remaining(grid.coords, writer.written_coords())
                what = f"{identity.slide_id}: GPU memory short: {batch_size} patches a batch"
                yield Progress(writer.count, len(grid), what, {"batch_size": batch_size})
        finally:
            writer.close()


def _smaller_batch(
    batch_size: int, error: BaseException, slide: Path, extractor: FeatureExtractor
) -> int:
    """Half ``batch_size`` after the GPU ran out of memory; at one patch, a clear error."""
    if batch_size > 1:
        return batch_size // 2
    raise DeviceMemoryError(
        f"{slide}: the GPU has not enough memory for {extractor.spec.name} on even one "
        f"patch ({allocation_of(error)}); extract with --device cpu"
    ) from None


def extractor_device(extractor: FeatureExtractor) -> torch.device:
    """The device an extractor's weights (or buffers) live on; CPU when it has none."""
    for tensor in [*extractor.parameters(), *extractor.buffers()]:
        return tensor.device
    return torch.device("cpu")


class _ModelRunner:
    """Runs batches through the extractor, overlapping copies and compute on CUDA.

    On CUDA, a batch is copied into pinned memory, sent with ``non_blocking=True``, run
    under autocast, and its features copied back non-blocking; they are collected one
    batch later, so the GPU works on batch i+1 while the host writes batch i.

    Compiled, every batch runs at ``batch_size`` (a slide's last, shorter batch is padded
    and its padding's features dropped): each new batch size would compile the model
    again, and a slide's last batch has a size of its own.
    """

    def __init__(
        self, extractor: FeatureExtractor, device: torch.device, compile: bool, batch_size: int
    ) -> None:
        self.extractor = extractor
        self.device = device
        self.cuda = device.type == "cuda"
        self.forward = torch.compile(extractor) if compile else extractor
        self.static_batch = batch_size if compile else None
        self.autocast_dtype = (
            (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16)
            if self.cuda
            else None
        )

    def run(
        self, batches: Iterator[tuple[np.ndarray, np.ndarray]]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(coords, uint8 patches)`` batches in, ``(coords, float32 features)`` out, in order."""
        if not self.cuda:
            for coords, patches in batches:
                yield coords, self._forward(torch.from_numpy(patches)).numpy()
            return
        staging: list[torch.Tensor | None] = [None, None]
        results: list[torch.Tensor | None] = [None, None]
        pending: tuple[np.ndarray, torch.Tensor, torch.cuda.Event] | None = None
        for n, (coords, patches) in enumerate(batches):
            slot = n % 2
            batch = torch.from_numpy(patches)
            staging[slot] = _pinned(staging[slot], batch.shape, torch.uint8)
            staged = staging[slot][: batch.shape[0]]  # type: ignore[index]
            staged.copy_(batch)
            features = self._forward(staged.to(self.device, non_blocking=True))
            results[slot] = _pinned(results[slot], features.shape, torch.float32)
            host = results[slot][: features.shape[0]]  # type: ignore[index]
            host.copy_(features, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            if pending is not None:
                pending[2].synchronize()
                yield pending[0], pending[1].numpy()
            pending = (coords, host, event)
        if pending is not None:
            pending[2].synchronize()
            yield pending[0], pending[1].numpy()

    @torch.inference_mode()
    def _forward(self, batch: torch.Tensor) -> torch.Tensor:
        n = batch.shape[0]
        if self.static_batch is not None and n < self.static_batch:
            batch = torch.cat([batch, batch.new_zeros((self.static_batch - n, *batch.shape[1:]))])
        x = self.extractor.prepare(batch)
        x = x.contiguous(memory_format=torch.channels_last)
        use_autocast = self.cuda and self.extractor.spec.mixed_precision
        with torch.autocast(
            device_type=self.device.type, dtype=self.autocast_dtype, enabled=use_autocast
        ):
            features = self.forward(x)
        return features[:n].float()


def _pinned(buffer: torch.Tensor | None, shape: torch.Size, dtype: torch.dtype) -> torch.Tensor:
    """A pinned host buffer at least ``shape`` long (reused between batches)."""
    if buffer is None or buffer.shape[0] < shape[0] or buffer.shape[1:] != shape[1:]:
        buffer = torch.empty(shape, dtype=dtype).pin_memory()
    return buffer


def _remaining(coords: np.ndarray, written: np.ndarray) -> np.ndarray:
    """``coords`` minus those already ``written`` (order kept)."""
    if len(written) == 0:
        return coords
    done = {(int(x), int(y)) for x, y in written}
    keep = np.fromiter(
        ((int(x), int(y)) not in done for x, y in coords), dtype=bool, count=len(coords)
    )
    return coords[keep]


def tissue_fingerprint(config: ExtractConfig) -> str:
    """8 hex digits that change with any setting deciding which patches are tissue.

    Part of the analysis cache's folder and result names, so that a changed tissue rule
    (a new default included) never returns features or results made under the old one.
    """
    settings = {"tissue": asdict(config.tissue), "min_tissue": config.min_tissue}
    text = json.dumps(settings, sort_keys=True)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:8]


def _weights_fingerprint(path: Path | None) -> str | None:
    if path is None:
        return None
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(str(path.stat().st_size).encode())
    with path.open("rb") as f:
        digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]


def _settings(
    config: ExtractConfig, grid: PatchGrid, fingerprint: str, extractor: FeatureExtractor
) -> dict[str, Any]:
    return {
        "slide_fingerprint": fingerprint,
        "slide_mpp": list(grid.slide_mpp),
        "extractor": extractor.spec.name,
        "extractor_version": extractor.spec.version,
        "feature_dim": extractor.spec.feature_dim,
        "weights": _weights_fingerprint(config.weights),
        "random_weights": bool(config.allow_random_weights and config.weights is None),
        "min_tissue": config.min_tissue,
        "tissue": asdict(config.tissue),
        "roi": _weights_fingerprint(config.roi),
        "roi_mode": config.roi_mode if config.roi is not None else None,
        **grid.geometry(),
    }


def _attrs(grid: PatchGrid, identity: Any, extractor: FeatureExtractor) -> dict[str, Any]:
    return {
        "extractor": extractor.spec.name,
        "feature_dim": extractor.spec.feature_dim,
        "patch_size": grid.patch_px,
        "patch_size_level0": grid.patch_size_level0,
        "target_mpp": grid.target_mpp,
        "slide_mpp": list(grid.slide_mpp),
        "read_level": grid.read_level,
        "overlap": grid.overlap_px,
        "slide_id": identity.slide_id,
        "slide_fingerprint": identity.fingerprint,
        "slide_width": identity.width,
        "slide_height": identity.height,
    }
