"""The prepared run for a lent GPU machine: proves every CUDA path, takes the GPU figures.

Every step runs SlideScope's own code on ``--device`` (``cuda`` there) and checks what it
gives against the CPU, then times it:

1. ``extract_order``: a ViT-B/16 with fixed random weights (a ``.safetensors`` file, as a
   user passes ``--weights``) extracts one slide on the CPU in float32 and on the device
   (pinned, double-buffered copies, bf16 autocast): the same patches in the same order,
   each patch's features at cosine >= 0.99 to the CPU's.
2. ``extract_speed``: ViT-L/14 (random weights) over a cohort of demo slides, one extractor
   for all, as ``slidescope extract`` runs them; patches/s of the feature phase against the
   pure bf16 forward pass of the same batch size on tensors already on the device (aim
   >= 0.9, issue 17's benchmark 5), with 2 and with the default reading threads;
   bf16 against float32 features of the same patches.
3. ``dask_gpu``: a local Dask cluster whose workers declare ``GPU=1`` extracts through
   ``run_batch(gpu=True)``; its features equal step 1's device run.
4. ``training``: ABMIL plain and MHIM-MIL on planted bags shaped like step 2's features, on
   the device and the CPU: seconds and validation AUC (>= 0.9 on both).
5. ``inference``: ``analyze_slide`` with that checkpoint on step 2's features, device
   against CPU (probabilities within 1e-3, attention correlated >= 0.999); seconds per
   slide; forward + hard instances of ABMIL and TransMIL for bags up to 100,000 patches.
6. ``finetune``: the bundled demo model fine-tuned on annotated demo slides on the device
   (its ``builtin`` features extracted there), then on the CPU from the same features.
7. ``out_of_memory``: step 2's extraction with a batch too large for this process's
   memory, capped to a few GiB: it goes on in smaller batches, features unchanged.
8. ``extract_compiled``: step 2's extraction through ``torch.compile`` (``--compile``):
   compile time, patches/s against eager, features against eager (last: it can take
   minutes).

On the lent machine (Python 3.12, torch and h5py there; the rest travels as wheels)::

    bash tests/benchmarks/device_wheels.sh        # here: .whl/ (ignored), ~45 MB
    # run, carry [".whl"], timeout_s 540:
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
        .whl/*.whl && PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 \
        python3 tests/benchmarks/device_check.py --out $OUT

Here, tiny and on the CPU (the test suite runs this: the script is ready when a GPU is):
``python tests/benchmarks/device_check.py --smoke --out DIR``. Results go to
``DIR/device_check.json`` (written after every step), the tracebacks of failed steps to
``DIR/tracebacks.txt``; a table is printed last; the exit status is 1 when a check failed.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "models"))  # training_bags

from slidescope.app.analysis.extract import (
    ExtractConfig,
    build_extractor,
    describe_run,
    extract_features,
    reading_threads,
)
from slidescope.app.jobs import Progress, run_job
from slidescope.models.devices import describe_device, resolve_device


@dataclass(frozen=True)
class Sizes:
    """What one mode runs: the full check on the GPU machine, or a tiny one anywhere."""

    device: str
    slide_px: tuple[int, int]
    cohort_seeds: tuple[int, ...]  # slides with lesions (their outlines are annotations)
    normal_seeds: tuple[int, ...]  # slides without
    order_extractor: str
    order_geometry: tuple[float, int]  # target µm/px, patch px
    order_batch: int
    speed_extractor: str
    speed_geometry: tuple[float, int]
    speed_batch: int
    threads: tuple[int | None, ...]  # None: the default (reading_threads)
    forward_batches: int
    bags: int
    instances: int
    epochs: int
    sweep: tuple[int, ...]
    finetune_epochs: int
    oom_batch: int  # a batch that does not fit under the cap below
    oom_cap_gib: float


FULL = Sizes(
    device="cuda",
    slide_px=(16_384, 12_288),
    cohort_seeds=(0, 1, 4, 5),
    normal_seeds=(2, 3),
    order_extractor="vit_base_patch16",
    order_geometry=(0.5, 256),
    order_batch=32,
    speed_extractor="vit_large_patch14",
    speed_geometry=(0.25, 224),
    speed_batch=256,
    threads=(2, None),
    forward_batches=10,
    bags=48,
    instances=1000,
    epochs=10,
    sweep=(10_000, 50_000, 100_000),
    finetune_epochs=10,
    oom_batch=1024,
    oom_cap_gib=3.0,
)
SMOKE = Sizes(
    device="auto",
    slide_px=(4096, 4096),
    cohort_seeds=(0,),
    normal_seeds=(2,),
    order_extractor="vit_test",
    order_geometry=(0.25, 64),
    order_batch=8,
    speed_extractor="vit_test",
    speed_geometry=(0.25, 64),
    speed_batch=16,
    threads=(0, 2),
    forward_batches=2,
    bags=30,
    instances=40,
    epochs=10,
    sweep=(500,),
    finetune_epochs=2,
    oom_batch=16,
    oom_cap_gib=0.0,
)


@dataclass
class Context:
    """What the steps share: sizes, the scratch folder, the slides and what earlier steps made."""

    sizes: Sizes
    work: Path
    made: dict[str, Any]

    @property
    def device(self) -> torch.device:
        return resolve_device(self.sizes.device)

    @property
    def cohort(self) -> list[Path]:
        return self.made["cohort"]

    @property
    def normals(self) -> list[Path]:
        return self.made["normals"]


# -- helpers --------------------------------------------------------------------------------


def expect(figures: dict[str, Any], condition: object, failure: str) -> None:
    """A check of a step: a failed one is listed under ``failed``, the figures are kept."""
    if not condition:
        figures.setdefault("failed", []).append(failure)


def synchronize() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _generate(args: tuple[str, int, int, int]) -> str:
    from slidescope.app.demo.generate import generate_demo_slide

    path, width, height, seed = args
    if not Path(path).exists():
        run_job(generate_demo_slide(path, width, height, seed=seed, mpp=0.25))
    return path


def make_slides(ctx: Context) -> None:
    """The demo slides of every step, drawn in parallel processes."""
    width, height = ctx.sizes.slide_px
    folder = ctx.work / "slides"
    folder.mkdir(parents=True, exist_ok=True)
    seeds = ctx.sizes.cohort_seeds + ctx.sizes.normal_seeds
    jobs = [(str(folder / f"demo_{seed}.tiff"), width, height, seed) for seed in seeds]
    spawn = multiprocessing.get_context("spawn")  # no fork of a process holding CUDA
    with ProcessPoolExecutor(min(len(jobs), 8), mp_context=spawn) as pool:
        paths = [Path(p) for p in pool.map(_generate, jobs)]
    ctx.made["cohort"] = paths[: len(ctx.sizes.cohort_seeds)]
    ctx.made["normals"] = paths[len(ctx.sizes.cohort_seeds) :]


def feature_phase(
    slide: Path, out: Path, config: ExtractConfig, extractor: Any = None
) -> tuple[int, float, float, Path]:
    """(patches, seconds of the feature phase, seconds in all, feature file) of one slide."""
    start = time.perf_counter()
    seen: dict[str, Any] = {"features_start": None, "patches": 0}

    def on_step(step: Progress) -> None:
        if seen["features_start"] is None and step.what.endswith("features"):
            seen["features_start"] = time.perf_counter()
        if step.total:
            seen["patches"] = step.done

    path = run_job(extract_features(slide, out, config, extractor), on_step)
    synchronize()
    end = time.perf_counter()
    return seen["patches"], end - (seen["features_start"] or end), end - start, Path(path)


def read_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with h5py.File(path, "r") as handle:
        return handle["coords"][:], handle["features"][:]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    norms = np.linalg.norm(a64, axis=1) * np.linalg.norm(b64, axis=1)
    return (a64 * b64).sum(axis=1) / np.maximum(norms, 1e-12)


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-12))


def timed(fn: Callable[[], Any], repeats: int, warmups: int = 1) -> tuple[float, Any]:
    """Median seconds of ``fn`` (device synchronised around each call) and its last result."""
    result = None
    for _ in range(warmups):
        result = fn()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        result = fn()
        synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times)), result


def order_config(ctx: Context, device: str) -> ExtractConfig:
    mpp, px = ctx.sizes.order_geometry
    return ExtractConfig(
        extractor=ctx.sizes.order_extractor,
        weights=ctx.made["order_weights"],
        target_mpp=mpp,
        patch_px=px,
        device=device,
        batch_size=ctx.sizes.order_batch,
        workers=2,
    )


# -- steps ----------------------------------------------------------------------------------


def step_environment(ctx: Context) -> dict[str, Any]:
    if ctx.sizes is FULL and not torch.cuda.is_available():
        raise RuntimeError("torch sees no CUDA GPU: the full check is for the GPU machine")
    start = time.perf_counter()
    make_slides(ctx)  # first: its processes start before this one holds a CUDA context
    figures: dict[str, Any] = {"slides_s": round(time.perf_counter() - start, 1)}
    figures.update(torch=torch.__version__, device=describe_device(ctx.device))
    if ctx.device.type == "cuda":
        props = torch.cuda.get_device_properties(ctx.device)
        figures.update(
            gpu=props.name,
            memory_gib=round(props.total_memory / 2**30, 1),
            bf16=torch.cuda.is_bf16_supported(),
            cpus=os.cpu_count(),
        )
    return figures


def step_extract_order(ctx: Context) -> dict[str, Any]:
    from safetensors.torch import save_file
    from slidescope.models.extractors import create_extractor

    torch.manual_seed(0)
    model = create_extractor(ctx.sizes.order_extractor, allow_random=True)
    weights = ctx.work / "order_weights.safetensors"
    save_file(
        {k.removeprefix("trunk."): v.contiguous() for k, v in model.state_dict().items()}, weights
    )
    ctx.made["order_weights"] = weights
    slide = ctx.normals[0]
    cpu = feature_phase(slide, ctx.work / "order_cpu", order_config(ctx, "cpu"))
    dev = feature_phase(slide, ctx.work / "order_device", order_config(ctx, ctx.sizes.device))
    ctx.made["order_device_file"] = dev[3]
    (ref_coords, ref), (coords, got) = read_h5(cpu[3]), read_h5(dev[3])
    same_order = bool(np.array_equal(ref_coords, coords))
    cos = cosines(got, ref) if same_order else np.zeros(1)
    figures = {
        "patches": dev[0],
        "batches": -(-dev[0] // ctx.sizes.order_batch),
        "same_patches_same_order": same_order,
        "min_cosine": round(float(cos.min()), 5),
        "relative_error": round(relative_error(got, ref), 5) if same_order else None,
        "cpu_s": round(cpu[2], 2),
        "device_s": round(dev[2], 2),
    }
    expect(figures, same_order, "the device run wrote other patches, or in another order")
    expect(
        figures, cos.min() >= 0.99, f"a patch's device features are off (cosine {cos.min():.4f})"
    )
    return figures


def step_extract_speed(ctx: Context) -> dict[str, Any]:
    sizes = ctx.sizes
    mpp, px = sizes.speed_geometry
    config = ExtractConfig(
        extractor=sizes.speed_extractor,
        target_mpp=mpp,
        patch_px=px,
        device=sizes.device,
        batch_size=sizes.speed_batch,
        allow_random_weights=True,
    )
    device = ctx.device
    torch.manual_seed(1)
    extractor = build_extractor(config, device)
    ctx.made["speed_config"], ctx.made["speed_extractor"] = config, extractor
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    # warm-up: CUDA context, cuBLAS/cuDNN handles, the reading threads' first tiles
    feature_phase(ctx.normals[0], ctx.work / "speed_warmup", config, extractor)
    figures: dict[str, Any] = {"run": describe_run(config, device)}
    for threads in sizes.threads:
        label = "default" if threads is None else threads
        out = ctx.work / f"speed_features_{label}"
        patches = features_s = total_s = 0.0
        for slide in ctx.cohort:
            n, phase, whole, _ = feature_phase(
                slide, out, replace(config, workers=threads), extractor
            )
            patches, features_s, total_s = patches + n, features_s + phase, total_s + whole
        figures[f"patches_per_s_{label}_threads"] = round(patches / features_s, 1)
        figures[f"with_open_and_tissue_{label}_threads"] = round(patches / total_s, 1)
        figures["patches"] = int(patches)
        ctx.made["speed_features"] = out
        ctx.made["speed_rate"] = max(ctx.made.get("speed_rate", 0.0), patches / features_s)
    if device.type == "cuda":
        figures["peak_gpu_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
    # the pure forward pass: prepared batches already on the device, bf16 autocast
    batch = torch.randint(0, 256, (sizes.speed_batch, px, px, 3), dtype=torch.uint8, device=device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with torch.inference_mode():
        x = extractor.prepare(batch).contiguous(memory_format=torch.channels_last)

        def forward(inputs: torch.Tensor = x) -> torch.Tensor:
            with torch.autocast(device.type, dtype=dtype, enabled=device.type == "cuda"):
                return extractor(inputs)

        pure_s, _ = timed(lambda: [forward() for _ in range(sizes.forward_batches)], 3)
        prep_s, _ = timed(
            lambda: [forward(extractor.prepare(batch)) for _ in range(sizes.forward_batches)], 3
        )
        reference = extractor(x[:32].float()).float().cpu().numpy()  # float32 throughout
        low = forward(x[:32]).float().cpu().numpy()
    pure = sizes.forward_batches * sizes.speed_batch / pure_s
    figures["pure_forward_per_s"] = round(pure, 1)
    figures["prepare_and_forward_per_s"] = round(
        sizes.forward_batches * sizes.speed_batch / prep_s, 1
    )
    figures["default_threads"] = reading_threads(None, device)
    best = max(v for k, v in figures.items() if k.startswith("patches_per_s_"))
    figures["pipeline_over_forward"] = round(best / pure, 3)
    figures["bf16_relative_error"] = round(relative_error(low, reference), 5)
    figures["bf16_min_cosine"] = round(float(cosines(low, reference).min()), 5)
    expect(figures, figures["bf16_min_cosine"] >= 0.99, "bf16 features drift from float32")
    return figures


def step_dask_gpu(ctx: Context) -> dict[str, Any]:
    from distributed import LocalCluster
    from slidescope.app.batch.runner import run_batch
    from slidescope.app.batch.tasks import ExtractTask, run_extract_task

    out = ctx.work / "dask_features"
    config = order_config(ctx, ctx.sizes.device)
    slides = [ctx.normals[0], *ctx.cohort[:1]]
    tasks = [ExtractTask(str(slide), str(out), config) for slide in slides]
    messages: list[str] = []
    start = time.perf_counter()
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, resources={"GPU": 1},
        dashboard_address=None,
    ) as cluster:  # fmt: skip
        job = run_batch(
            tasks, run_extract_task, out, scheduler=cluster.scheduler_address, gpu=True,
            on_message=messages.append,
        )  # fmt: skip
        outcomes = run_job(job)
    seconds = time.perf_counter() - start
    statuses = [o.status for o in outcomes]
    figures: dict[str, Any] = {
        "statuses": statuses,
        "gpu_workers_seen": any("GPU worker" in m for m in messages),
        "seconds": round(seconds, 1),
        "min_cosine_to_serial": 0.0,
    }
    made = out / ctx.made["order_device_file"].name
    if made.exists():
        _, reference = read_h5(ctx.made["order_device_file"])
        figures["min_cosine_to_serial"] = round(
            float(cosines(read_h5(made)[1], reference).min()), 6
        )
    expect(figures, statuses == ["done"] * len(tasks), f"outcomes: {[o.error for o in outcomes]}")
    expect(
        figures, figures["gpu_workers_seen"], f"the batch did not use the GPU resource: {messages}"
    )
    expect(
        figures, figures["min_cosine_to_serial"] >= 0.999, "a worker's features differ from serial"
    )
    return figures


def _planted_like(template: Path, folder: Path, sizes: Sizes) -> tuple[Path, Path]:
    """Planted bags with the attributes of a real feature file (its extractor and geometry)."""
    from training_bags import planted_bags

    with h5py.File(template, "r") as handle:
        attrs = dict(handle.attrs)
        dim = int(handle["features"].shape[1])
        coords_attrs = dict(handle["coords"].attrs)
    features, labels = planted_bags(folder, sizes.bags, sizes.instances, dim, extractor="x")
    keep = ("slide_id", "slide_fingerprint", "slide_width", "slide_height")
    for path in features.glob("*.h5"):
        with h5py.File(path, "a") as handle:
            handle.attrs.update({k: v for k, v in attrs.items() if k not in keep})
            handle["coords"].attrs.update(coords_attrs)
    return features, labels


def step_training(ctx: Context) -> dict[str, Any]:
    from slidescope.models.training import TrainingConfig, train

    template = next(iter(sorted(ctx.made["speed_features"].glob("*.h5"))))
    features, labels = _planted_like(template, ctx.work / "bags", ctx.sizes)
    devices = [ctx.sizes.device] + (["cpu"] if ctx.device.type != "cpu" else [])
    figures: dict[str, Any] = {"bags": ctx.sizes.bags, "instances": ctx.sizes.instances}
    for method in ("plain", "mhim"):
        for device in devices:
            name = "device" if device == ctx.sizes.device else "cpu"
            out = ctx.work / f"{method}_{name}.safetensors"
            config = TrainingConfig(
                features=features, labels=labels, out=out, model="abmil", method=method,
                epochs=ctx.sizes.epochs, patience=0, device=device, seed=0, resume=False,
            )  # fmt: skip
            start = time.perf_counter()
            result = run_job(train(config))
            figures[f"{method}_{name}_s"] = round(time.perf_counter() - start, 2)
            figures[f"{method}_{name}_val_auc"] = round(result.metrics["val_auc"], 3)
            if method == "plain" and name == "device":
                ctx.made["checkpoint"] = result.path
    for key, value in list(figures.items()):
        if key.endswith("val_auc"):
            expect(
                figures, value >= 0.9, f"{key} = {value}: training did not learn the planted bags"
            )
    return figures


def step_inference(ctx: Context) -> dict[str, Any]:
    from slidescope.app.analysis.hard_instances import hard_instances
    from slidescope.app.analysis.inference import analyze_slide
    from slidescope.models.mil.registry import create_model

    checkpoint, slide = ctx.made["checkpoint"], ctx.cohort[0]
    figures: dict[str, Any] = {}
    results = {}
    for name, device in (("device", ctx.sizes.device), ("cpu", "cpu")):
        caches = iter(range(100))

        def analyse(device: str = device, caches: Iterator[int] = caches) -> Any:
            cache = ctx.work / f"analysis_{device}_{next(caches)}"
            job = analyze_slide(
                slide, checkpoint, cache, device=device, features_dir=ctx.made["speed_features"]
            )
            return run_job(job)

        start = time.perf_counter()
        first = analyse()
        figures[f"{name}_first_s"] = round(time.perf_counter() - start, 3)
        figures[f"{name}_per_slide_s"], results[name] = timed(analyse, 3, warmups=0)
        figures[f"{name}_per_slide_s"] = round(figures[f"{name}_per_slide_s"], 3)
        figures["patches"] = len(first.coords)
    dev, cpu = results["device"], results["cpu"]
    figures["max_probability_difference"] = float(
        np.abs(dev.probabilities - cpu.probabilities).max()
    )
    figures["attention_correlation"] = round(
        float(np.corrcoef(dev.attention.ravel(), cpu.attention.ravel())[0, 1]), 6
    )
    # forward + hard instances alone, growing bags
    device = ctx.device
    with h5py.File(next(iter(ctx.made["speed_features"].glob("*.h5"))), "r") as handle:
        dim = int(handle["features"].shape[1])
    for arch in ("abmil", "transmil"):
        torch.manual_seed(0)
        model = create_model(arch, dim, 2).to(device).eval()
        for n in ctx.sizes.sweep:
            x = torch.randn(n, dim, device=device)

            @torch.no_grad()
            def run(model: Any = model, x: torch.Tensor = x) -> Any:
                output = model(x)
                return hard_instances(model, x, 0.01, output=output)

            seconds, _ = timed(run, 3)
            figures[f"{arch}_{n}_ms"] = round(seconds * 1e3, 2)
            del x
    expect(
        figures, figures["max_probability_difference"] <= 1e-3, "device and CPU predictions differ"
    )
    expect(figures, figures["attention_correlation"] >= 0.999, "device and CPU attention differ")
    return figures


def step_finetune(ctx: Context) -> dict[str, Any]:
    from slidescope.app.demo.generate import lesions_path_for
    from slidescope.app.training.finetune import FinetuneRequest, TrainingSlide, finetune
    from slidescope.models.checkpoints import load_checkpoint
    from slidescope.models.training.finetune_settings import FinetuneSettings
    from slidescope.resources import __file__ as resources_init

    base = Path(resources_init).parent / "demo_model.safetensors"
    slides = [TrainingSlide(p, None, lesions_path_for(p)) for p in ctx.cohort]
    slides += [TrainingSlide(p, "normal") for p in ctx.normals]
    figures: dict[str, Any] = {"slides": len(slides)}
    runs = [
        ("device_with_extraction", ctx.sizes.device),
        ("cpu", "cpu"),
        ("device", ctx.sizes.device),
    ]
    for name, device in runs:
        if name == "cpu" and ctx.device.type == "cpu":
            continue
        request = FinetuneRequest(
            base=base, slides=slides, out=ctx.work / f"finetuned_{name}.safetensors",
            cache_dir=ctx.work / "finetune_cache",
            settings=FinetuneSettings(epochs=ctx.sizes.finetune_epochs, device=device, seed=0),
            class_map={"Tumor": "lesion"}, outside_class="normal",
        )  # fmt: skip
        start = time.perf_counter()
        outcome = run_job(finetune(request))
        figures[f"{name}_s"] = round(time.perf_counter() - start, 2)
        load_checkpoint(outcome.result.path, device=str(ctx.device))
        figures[f"{name}_val"] = {k: round(v, 3) for k, v in outcome.result.metrics.items()}
    return figures


def step_out_of_memory(ctx: Context) -> dict[str, Any]:
    """A GPU short of memory: extraction goes on in smaller batches, its features unchanged.

    On the GPU this process is capped to ``oom_cap_gib``; on the CPU, which has no such
    cap, the forward pass fails as a capped GPU's does, above a quarter of the batch.
    """
    sizes, device = ctx.sizes, ctx.device
    config = replace(ctx.made["speed_config"], batch_size=sizes.oom_batch)
    extractor = ctx.made["speed_extractor"]
    if device.type == "cuda":
        torch.cuda.empty_cache()
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(sizes.oom_cap_gib * 2**30 / total, device)
    else:
        forward = extractor.forward

        def capped(x: torch.Tensor) -> torch.Tensor:
            if x.shape[0] > sizes.oom_batch // 4:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
            return forward(x)

        extractor.forward = capped
    steps: list[Progress] = []
    try:
        job = extract_features(ctx.normals[0], ctx.work / "short_of_memory", config, extractor)
        path = run_job(job, steps.append)
    finally:
        if device.type == "cuda":
            torch.cuda.set_per_process_memory_fraction(1.0, device)
            torch.cuda.empty_cache()
        else:
            del extractor.forward  # the class's own again
    notes = [s.what for s in steps if "GPU memory short" in s.what]
    _, reference = read_h5(ctx.work / "speed_warmup" / path.name)
    figures: dict[str, Any] = {
        "batch_asked": sizes.oom_batch,
        "notes": notes,
        "min_cosine": round(float(cosines(read_h5(path)[1], reference).min()), 5),
    }
    expect(figures, notes, "the capped GPU never ran short: a larger batch or a lower cap")
    expect(figures, figures["min_cosine"] >= 0.99, "features differ after the batches shrank")
    return figures


def step_extract_compiled(ctx: Context) -> dict[str, Any]:
    """``--compile``: the same extraction through ``torch.compile`` (compiled on a warm-up)."""
    config = replace(ctx.made["speed_config"], compile=True)
    extractor = ctx.made["speed_extractor"]
    start = time.perf_counter()
    feature_phase(ctx.normals[0], ctx.work / "compiled_warmup", config, extractor)
    figures: dict[str, Any] = {"compile_and_warmup_s": round(time.perf_counter() - start, 1)}
    patches, features_s, _, path = feature_phase(
        ctx.cohort[0], ctx.work / "compiled_features", config, extractor
    )
    eager = ctx.made["speed_features"] / path.name
    figures["patches_per_s"] = round(patches / features_s, 1)
    figures["over_eager"] = round(patches / features_s / ctx.made["speed_rate"], 3)
    figures["min_cosine_to_eager"] = round(
        float(cosines(read_h5(path)[1], read_h5(eager)[1]).min()), 5
    )
    expect(
        figures, figures["min_cosine_to_eager"] >= 0.99, "compiled features differ from eager ones"
    )
    return figures


STEPS: list[tuple[str, Callable[[Context], dict[str, Any]]]] = [
    ("environment", step_environment),
    ("extract_order", step_extract_order),
    ("extract_speed", step_extract_speed),
    ("dask_gpu", step_dask_gpu),
    ("training", step_training),
    ("inference", step_inference),
    ("finetune", step_finetune),
    ("out_of_memory", step_out_of_memory),
    ("extract_compiled", step_extract_compiled),  # last: compiling can take minutes
]
NEEDS = {
    "dask_gpu": "extract_order",
    "training": "extract_speed",
    "inference": "training",
    "out_of_memory": "extract_speed",
    "extract_compiled": "extract_speed",
}


def chosen_steps(only: list[str] | None) -> list[str]:
    """The steps to run: all, or those asked for with what they need (in order)."""
    names = [name for name, _ in STEPS]
    if not only:
        return names
    unknown = sorted(set(only) - set(names))
    if unknown:
        raise SystemExit(f"unknown step(s) {', '.join(unknown)}; the steps: {', '.join(names)}")
    wanted = {"environment", *only}
    for name in reversed(names):
        if name in wanted and name in NEEDS:
            wanted.add(NEEDS[name])
    return [name for name in names if name in wanted]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder of the results")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, CPU where no GPU")
    parser.add_argument(
        "--work", type=Path, help="scratch folder, kept (default: a temporary one)"
    )
    parser.add_argument("--only", nargs="*", help="run these steps (and what they need)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = args.work or Path(tempfile.mkdtemp(prefix="slidescope-device-check-"))
    ctx = Context(SMOKE if args.smoke else FULL, work, {})
    results: dict[str, dict[str, Any]] = {}
    chosen = chosen_steps(args.only)
    try:
        for name, step in STEPS:
            if name not in chosen:
                continue
            if NEEDS.get(name) in results and not results[NEEDS[name]]["ok"]:
                results[name] = {"ok": False, "error": f"skipped: {NEEDS[name]} failed"}
                continue
            start = time.perf_counter()
            try:
                figures = step(ctx)
                results[name] = {"ok": not figures.get("failed"), **figures}
            except Exception as error:  # a failed step is a finding: record it, go on
                results[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
                with (args.out / "tracebacks.txt").open("a") as handle:
                    handle.write(f"== {name}\n{traceback.format_exc()}\n")
            results[name]["step_s"] = round(time.perf_counter() - start, 1)
            print(f"[device-check] {name}: {json.dumps(results[name], default=str)}", flush=True)
            # after every step: a run stopped at its time limit keeps what it measured
            (args.out / "device_check.json").write_text(json.dumps(results, indent=2, default=str))
            if not results["environment"]["ok"]:
                break
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\nstep            ok    seconds  figures")
    for name, result in results.items():
        rest = {k: v for k, v in result.items() if k not in ("ok", "step_s")}
        print(
            f"{name:<15} {'yes' if result['ok'] else 'NO':<5} {result.get('step_s', '-'):>7}  {rest}"
        )
    return 0 if results and all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
