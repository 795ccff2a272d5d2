"""Benchmark 4: demo-slide generation at the default (gigapixel) size.

Figures: seconds for 50,000 × 40,000 px, level-0 Mpx/s, peak memory (RSS), and the ratio of
the generation time to JPEG-encoding the same number of tiles alone (the baseline, same
run): the cost of painting, halving and writing on top of the unavoidable encoding.
"""

from __future__ import annotations

import time
from pathlib import Path

import imagecodecs
import numpy as np
import pytest
from child_memory import run_measured
from slidescope.app.demo.generate import DEFAULT_HEIGHT, DEFAULT_WIDTH, JPEG_QUALITY, TILE
from slidescope.app.demo.layout import make_layout
from slidescope.app.demo.render import TileRenderer
from slidescope.app.demo.texture import make_textures, stain_lut

GENERATE = """
import sys
from slidescope.app.demo.generate import generate_demo_slide
from slidescope.app.jobs import run_job
run_job(generate_demo_slide(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), seed=3))
"""


def tiles_in_pyramid(width: int, height: int) -> int:
    count = 0
    while True:
        count += -(-width // TILE) * -(-height // TILE)
        if max(width, height) < 1024:
            return count
        width, height = -(-width // 2), -(-height // 2)


def tissue_tiles(count: int) -> list[np.ndarray]:
    """Real demo tissue tiles (normal and lesion), as the generator paints them."""
    rng = np.random.default_rng(3)
    layout = make_layout(8192, 6144, rng)
    renderer = TileRenderer(layout, make_textures(rng, TILE), stain_lut(rng), TILE)
    tiles = []
    for ty in range(6144 // TILE):
        for tx in range(8192 // TILE):
            x0, y0 = tx * TILE, ty * TILE
            if layout.tissue[y0 // layout.cell, x0 // layout.cell] > 200:
                tiles.append(renderer.render(x0, y0))
    return tiles[:: max(1, len(tiles) // count)][:count]


def jpeg_baseline_seconds(tiles: int) -> float:
    """JPEG-encode ``tiles`` tissue tiles alone, the way the generator encodes them.

    Every tile of the pyramid counts as a tissue tile here, though the generator encodes
    glass once: the baseline is the encoding a plain writer of these tiles could not skip.
    """
    variants = tissue_tiles(8)
    start = time.perf_counter()
    for i in range(tiles):
        imagecodecs.jpeg_encode(variants[i % 8], level=JPEG_QUALITY, subsampling="420")
    return time.perf_counter() - start


@pytest.mark.benchmark
def test_demo_slide_default_size(tmp_path: Path) -> None:
    width, height = DEFAULT_WIDTH, DEFAULT_HEIGHT
    out = tmp_path / "demo.tiff"
    seconds, peak_mb, _ = run_measured(GENERATE, str(out), str(width), str(height))
    tiles = tiles_in_pyramid(width, height)
    baseline = jpeg_baseline_seconds(tiles)
    megapixels = width * height / 1e6
    print(
        f"\ndemo slide {width} x {height}: {seconds:.1f} s, {megapixels / seconds:.1f} Mpx/s, "
        f"file {out.stat().st_size / 1e6:.0f} MB, peak RSS {peak_mb:.0f} MB\n"
        f"baseline: JPEG-encoding {tiles} tiles alone {baseline:.1f} s; "
        f"ratio generation / baseline = {seconds / baseline:.2f}"
    )
    assert out.exists()
    assert peak_mb < 2048
