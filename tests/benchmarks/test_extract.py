"""Extraction speed and memory, as ratios against baselines measured in the same run.

Run: ``python -m pytest tests/benchmarks/test_extract.py -o addopts="" -m benchmark -s
-p no:cacheprovider``.

1. Pipeline patches/s against the extractor's forward pass alone on random tensors of the
   same batch size (``builtin`` and ``resnet50-trunc`` with random weights, CPU).
2. Patch read-and-decode throughput against OpenSlide ``read_region`` of the same patches.
3. Peak memory (VmHWM) extracting a 100,000 x 100,000 slide, in a subprocess, against a
   process that only imports and builds the extractor.
4. ``builtin`` CPU per patch (prepare + forward, one thread), against version 2 of the same
   extractor (``builtin_v2.py``, kept as the baseline): aim new / old <= 0.2.
5. Whole-slide analysis of the 10,240 x 8,192 demo with the bundled demo model, from opening
   the slide to every heatmap grid (features extracted on the way): aim under 5 s.
Also: seconds for the whole default demo slide with ``builtin``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from child_memory import run_measured
from slidescope.app.analysis.extract import ExtractConfig, extract_features
from slidescope.app.analysis.patch_reader import PatchReader
from slidescope.app.analysis.patches import make_patch_grid
from slidescope.app.jobs import Progress, run_job
from slidescope.app.slides import open_slide
from slidescope.models.extractors import create_extractor

pytestmark = pytest.mark.benchmark

TILE = 512


@pytest.fixture(scope="module")
def demo_slide(tmp_path_factory) -> Path:
    """A 12,288 x 8,192 demo slide at 0.25 µm/px (about 1/16 of the default one)."""
    from slidescope.app.demo.generate import generate_demo_slide

    out = tmp_path_factory.mktemp("demo") / "bench.tiff"
    return run_job(generate_demo_slide(out, 12_288, 8_192, seed=5)).path


def _forward_only(name: str, batch_size: int, patch_px: int, batches: int) -> float:
    """Patches/s of the extractor alone on random uint8 patches (prepare + forward)."""
    extractor = create_extractor(name, allow_random=True).to(memory_format=torch.channels_last)
    patches = torch.randint(0, 256, (batch_size, patch_px, patch_px, 3), dtype=torch.uint8)
    with torch.inference_mode():
        extractor(extractor.prepare(patches))  # warm-up
        start = time.perf_counter()
        for _ in range(batches):
            extractor(extractor.prepare(patches))
    return batches * batch_size / (time.perf_counter() - start)


def _pipeline(slide: Path, out: Path, config: ExtractConfig) -> tuple[float, int]:
    """Patches/s of the feature phase of the job (tissue and grid excluded), and patches."""
    job = extract_features(slide, out, config)
    start, first, last = None, 0, Progress(0, 0)
    for step in job:
        if start is None and step.what.endswith("features"):
            start, first = time.perf_counter(), step.done
        last = step
    assert start is not None
    return (last.done - first) / (time.perf_counter() - start), last.done - first


@pytest.mark.parametrize(
    ("name", "batch_size", "roi_px"), [("builtin", 64, 6144), ("resnet50-trunc", 32, 2560)]
)
def test_pipeline_against_forward_only(demo_slide, tmp_path, name, batch_size, roi_px) -> None:
    from slidescope.app.annotations.geojson import polygon_feature, write_geojson

    # an ROI keeps the CPU run short; the patches are the same kind as the whole slide's
    box = [[0, 0], [roi_px * 2, 0], [roi_px * 2, roi_px], [0, roi_px]]
    roi = write_geojson(tmp_path / "roi.geojson", [polygon_feature([box])])
    config = ExtractConfig(
        extractor=name,
        batch_size=batch_size,
        workers=2,
        device="cpu",
        min_tissue=0.0,
        roi=roi,
        roi_mode="replace",
        allow_random_weights=True,
    )
    pipeline, n = _pipeline(demo_slide, tmp_path / "features", config)
    alone = _forward_only(name, batch_size, 256, max(2, n // batch_size // 2))
    print(
        f"\n[extract] {name}: pipeline {pipeline:.1f} patches/s ({n} patches) vs forward only "
        f"{alone:.1f} patches/s on random tensors, batch {batch_size}: ratio {pipeline / alone:.2f}"
    )


def test_read_and_decode_against_openslide(demo_slide) -> None:
    import openslide

    with open_slide(demo_slide) as slide:
        grid = make_patch_grid(slide, None, min_tissue=0.0)
    middle = len(grid.coords) // 2
    coords = grid.coords[max(0, middle - 500) : middle + 500]
    level, size = grid.read_level, grid.read_size
    demo_slide.read_bytes()  # the OS page cache is warm for everyone; slide caches are not

    def ours(workers: int) -> float:
        with open_slide(demo_slide) as slide, PatchReader(slide, grid, 32, workers) as reader:
            start = time.perf_counter()
            for _ in reader.batches(coords):
                pass
            return len(coords) / (time.perf_counter() - start)

    def openslide_read_region() -> float:
        with openslide.OpenSlide(str(demo_slide)) as osr:
            start = time.perf_counter()
            for x, y in coords:
                np.asarray(osr.read_region((int(x), int(y)), level, (size, size)).convert("RGB"))
            return len(coords) / (time.perf_counter() - start)

    # alternate and keep the best of two, so that the shared machine's load hits all alike
    rates: dict[str, float] = {}
    for _ in range(2):
        for name, measure in (
            ("1 thread", lambda: ours(0)),
            ("2 threads", lambda: ours(2)),
            ("openslide", openslide_read_region),
        ):
            rates[name] = max(rates.get(name, 0.0), measure())
    reference = rates["openslide"]
    print(
        f"\n[extract] read+decode of {len(coords)} patches ({size} px from level {level}): "
        f"PatchReader {rates['1 thread']:.0f}/s (1 thread), {rates['2 threads']:.0f}/s "
        f"(2 threads); OpenSlide read_region {reference:.0f}/s; ratios "
        f"{rates['1 thread'] / reference:.2f} and {rates['2 threads'] / reference:.2f}"
    )


def _tissue_tile(seed: int) -> np.ndarray:
    """Pink stroma with purple nuclei, one tile."""
    from skimage import draw

    rng = np.random.default_rng(seed)
    tile = np.clip(
        np.array([225, 150, 190]) + rng.integers(-12, 12, (TILE, TILE, 1)), 0, 255
    ).astype(np.uint8)
    for cy, cx in rng.uniform(0, TILE, (250, 2)):
        rr, cc = draw.disk((cy, cx), 5, shape=(TILE, TILE))
        tile[rr, cc] = (110, 60, 150)
    return tile


def write_big_slide(path: Path, size: int = 100_000, mpp: float = 0.25) -> Path:
    """A ``size`` x ``size`` JPEG-tiled pyramid made of two pre-encoded tiles (cheap to write).

    Tissue tiles (pink with nuclei) fill three discs of 8,000 px radius; the rest is glass.
    Every level uses the same two encoded tiles, chosen by where the tile's centre falls.
    """
    tissue, glass = _tissue_tile(seed=1), np.full((TILE, TILE, 3), 243, dtype=np.uint8)
    probe = path.with_suffix(".probe.tiff")
    tifffile.imwrite(
        probe,
        np.concatenate([tissue, glass], 1),
        tile=(TILE, TILE),
        compression="jpeg",
        photometric="rgb",
    )
    with tifffile.TiffFile(probe) as tif:
        page = tif.pages[0]
        fh = tif.filehandle
        encoded = []
        for offset, count in zip(page.dataoffsets, page.databytecounts):
            fh.seek(offset)
            encoded.append(fh.read(count))
    probe.unlink()
    discs = [(0.3 * size, 0.3 * size), (0.6 * size, 0.55 * size), (0.35 * size, 0.75 * size)]
    radius = 8000.0

    def tiles(level: int, width: int, height: int):
        step = TILE * 2**level
        for ty in range((height + TILE - 1) // TILE):
            for tx in range((width + TILE - 1) // TILE):
                cx, cy = (tx + 0.5) * step, (ty + 0.5) * step
                inside = any((cx - x) ** 2 + (cy - y) ** 2 < radius**2 for x, y in discs)
                yield encoded[0] if inside else encoded[1]

    options = {"tile": (TILE, TILE), "compression": "jpeg", "photometric": "rgb", "dtype": "uint8"}
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        level, width = 0, size
        while width >= 1024 or level == 0:
            extra = {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
            tif.write(
                tiles(level, width, width),
                shape=(width, width, 3),
                **(extra if level == 0 else {"subfiletype": 1}),
                **options,
            )
            level, width = level + 1, width // 2
    return path


def test_peak_memory_on_a_100k_slide(tmp_path) -> None:
    slide = write_big_slide(tmp_path / "big.tiff")
    config = "ExtractConfig(batch_size=64, workers=2, device='cpu')"
    _, baseline, _ = run_measured(f"""
        import torch
        torch.set_num_threads(2)
        from slidescope.app.analysis.extract import ExtractConfig, build_extractor
        build_extractor({config}, torch.device('cpu'))
    """)
    seconds, peak, _ = run_measured(f"""
        import torch
        torch.set_num_threads(2)
        from slidescope.app.analysis.extract import ExtractConfig, extract_features
        from slidescope.app.jobs import run_job
        import h5py
        path = run_job(extract_features({str(slide)!r}, {str(tmp_path / "features")!r}, {config}))
        with h5py.File(path) as f:
            print('patches', f['features'].shape[0])
    """)
    print(
        f"\n[extract] 100,000 x 100,000 slide: peak RSS {peak:.0f} MiB against {baseline:.0f} "
        f"MiB for imports + extractor alone: ratio {peak / baseline:.2f}; "
        f"{peak / 3072:.2f} of the 3 GiB aim; {seconds:.0f} s"
    )


def test_whole_default_demo_slide_with_builtin(tmp_path) -> None:
    from slidescope.app.demo.generate import generate_demo_slide

    start = time.perf_counter()
    demo = run_job(generate_demo_slide(tmp_path / "demo.tiff", seed=1))
    generation = time.perf_counter() - start
    config = ExtractConfig(batch_size=64, workers=2, device="cpu")
    start = time.perf_counter()
    path = run_job(extract_features(demo.path, tmp_path / "features", config))
    seconds = time.perf_counter() - start
    import h5py

    with h5py.File(path) as f:
        n = f["features"].shape[0]
    print(
        f"\n[extract] default demo slide ({demo.width} x {demo.height}): builtin features of "
        f"{n} patches in {seconds:.0f} s ({n / seconds:.1f} patches/s); generating it took "
        f"{generation:.0f} s: extraction/generation ratio {seconds / generation:.2f}"
    )


def _cpu_per_patch(extractor: torch.nn.Module, patches: torch.Tensor) -> float:
    """CPU seconds per patch of prepare + forward (best of three, so load hits both alike)."""
    best = float("inf")
    with torch.inference_mode():
        extractor(extractor.prepare(patches))  # warm-up
        for _ in range(3):
            start = time.process_time()
            x = extractor.prepare(patches).contiguous(memory_format=torch.channels_last)
            extractor(x)
            best = min(best, time.process_time() - start)
    return best / patches.shape[0]


def test_builtin_cpu_per_patch_against_version_2() -> None:
    from builtin_v2 import BuiltinExtractorV2

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # CPU time of one thread: what a core pays per patch
    try:
        rng = np.random.default_rng(0)
        patches = torch.from_numpy(rng.integers(0, 256, (64, 256, 256, 3), dtype=np.uint8))
        new = create_extractor("builtin")
        old = BuiltinExtractorV2()
        times = {"old": [], "new": []}
        for _ in range(2):  # interleaved, so that both see the same load
            times["old"].append(_cpu_per_patch(old, patches))
            times["new"].append(_cpu_per_patch(new, patches))
    finally:
        torch.set_num_threads(threads)
    old_s, new_s = min(times["old"]), min(times["new"])
    print(
        f"\n[extract] builtin CPU per 256 px patch: version {new.spec.version} "
        f"{new_s * 1e3:.2f} ms, version 2 {old_s * 1e3:.2f} ms: new / old {new_s / old_s:.3f} "
        f"({old_s / new_s:.1f}x cheaper; aim 5x)"
    )
    assert new_s / old_s <= 0.2


def test_whole_slide_analysis_of_the_small_demo(tmp_path) -> None:
    from importlib.resources import files

    from slidescope.app.analysis.heatmaps import KINDS, DisplayChoices, display_grid, kind_scores
    from slidescope.app.analysis.inference import analyze_slide
    from slidescope.app.demo.generate import generate_demo_slide

    checkpoint = Path(str(files("slidescope.resources"))) / "demo_model.safetensors"
    demo = run_job(generate_demo_slide(tmp_path / "demo.tiff", 10_240, 8_192, seed=7))
    # warm imports and kernels on another copy, so the timed run pays only for the analysis
    warm = run_job(generate_demo_slide(tmp_path / "warm.tiff", 2_048, 2_048, seed=7))
    run_job(analyze_slide(warm.path, checkpoint, tmp_path / "warm-cache", device="cpu"))
    start, cpu = time.perf_counter(), time.process_time()
    analysis = run_job(analyze_slide(demo.path, checkpoint, tmp_path / "cache", device="cpu"))
    display = DisplayChoices()
    for kind in KINDS:
        for scores in kind_scores(analysis, kind).values():
            display_grid(analysis, scores, display, binary=kind == "masked")
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(
        f"\n[extract] open -> heatmaps of the {demo.width} x {demo.height} demo "
        f"({analysis.n_patches} patches, builtin): {seconds:.2f} s wall ({cpu:.2f} s CPU); "
        f"aim 5 s: {seconds / 5.0:.2f} of it"
    )
    assert analysis.status == "ok"
    assert seconds < 5.0
