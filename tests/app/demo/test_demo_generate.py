"""The demo-slide job: a deterministic, readable, pyramidal H&E TIFF with lesion outlines."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile
from skimage.draw import polygon as fill_polygon
from slidescope.app.cli import main
from slidescope.app.demo.generate import (
    DemoSlideError,
    generate_demo_slide,
    lesions_path_for,
)
from slidescope.app.demo.layout import make_layout, planned_lesion_count
from slidescope.app.jobs import Progress, run_job

WIDTH, HEIGHT = 4096, 3072
LESION_SEED = 5  # a seed whose slide has lesions (checked below)


def lesion_free_seed() -> int:
    """The first seed whose slide has no lesion (the rule is in layout.py)."""
    return next(seed for seed in range(50) if planned_lesion_count(seed) == 0)


@pytest.fixture(scope="module")
def slide_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "demo.tiff"
    run_job(generate_demo_slide(out, WIDTH, HEIGHT, seed=LESION_SEED))
    return out


@pytest.mark.slow
def test_same_seed_gives_the_same_bytes(slide_file: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.tiff"
    run_job(generate_demo_slide(again, WIDTH, HEIGHT, seed=LESION_SEED))
    assert again.read_bytes() == slide_file.read_bytes()
    assert lesions_path_for(again).read_text() == lesions_path_for(slide_file).read_text()


def test_different_seeds_give_different_slides(slide_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.tiff"
    run_job(generate_demo_slide(other, 2048, 1536, seed=LESION_SEED + 1))
    with tifffile.TiffFile(slide_file) as a, tifffile.TiffFile(other) as b:
        first = a.pages[0].asarray()[:1536, :2048]
        second = b.pages[0].asarray()
    assert np.mean(first != second) > 0.05


def test_openslide_reads_size_levels_and_mpp(slide_file: Path) -> None:
    with openslide.OpenSlide(slide_file) as slide:
        assert slide.dimensions == (WIDTH, HEIGHT)
        assert slide.properties["openslide.vendor"] == "generic-tiff"
        assert float(slide.properties["openslide.mpp-x"]) == pytest.approx(0.25)
        assert float(slide.properties["openslide.mpp-y"]) == pytest.approx(0.25)
        assert slide.level_dimensions == ((4096, 3072), (2048, 1536), (1024, 768), (512, 384))
        assert slide.level_downsamples == pytest.approx((1, 2, 4, 8))
        region = np.asarray(slide.read_region((0, 0), 3, (512, 384)).convert("RGB"))
    assert region.std() > 5  # tissue is there, not a blank image


def test_tifffile_reads_a_tiled_jpeg_pyramid_with_resolution(slide_file: Path) -> None:
    with tifffile.TiffFile(slide_file) as tif:
        assert tif.is_bigtiff
        assert len(tif.pages) == 4  # one page (IFD) per level
        series = tif.series[0]
        assert [level.shape for level in series.levels] == [
            (3072, 4096, 3),
            (1536, 2048, 3),
            (768, 1024, 3),
            (384, 512, 3),
        ]
        for index, page in enumerate(tif.pages):
            assert page.is_tiled
            assert (page.tilewidth, page.tilelength) == (512, 512)
            assert page.compression == tifffile.COMPRESSION.JPEG
            assert page.subfiletype == (1 if index else 0)
            x_res = page.tags["XResolution"].value
            assert page.tags["ResolutionUnit"].value == tifffile.RESUNIT.CENTIMETER
            mpp = 1e4 / (x_res[0] / x_res[1])
            assert mpp == pytest.approx(0.25 * 2**index)
        level0 = tif.pages[0].asarray()[1024:2048, 512:1536]
    with openslide.OpenSlide(slide_file) as slide:
        same = np.asarray(slide.read_region((512, 1024), 0, (1024, 1024)).convert("RGB"))
    # both decoders read the same JPEG tiles: at most rounding apart
    assert np.abs(level0.astype(int) - same).max() <= 3


def test_open_slide_serves_it_with_its_mpp(slide_file: Path) -> None:
    from slidescope.app.slides import open_slide

    with open_slide(slide_file) as slide:
        assert slide.dimensions == (WIDTH, HEIGHT)
        assert slide.mpp == pytest.approx((0.25, 0.25))
        assert slide.downsamples == pytest.approx([1, 2, 4, 8])


def test_lower_levels_are_the_halved_level_above(slide_file: Path) -> None:
    with tifffile.TiffFile(slide_file) as tif:
        level0 = tif.pages[0].asarray().astype(np.float32)
        level1 = tif.pages[1].asarray().astype(np.float32)
    halved = level0.reshape(1536, 2, 2048, 2, 3).mean(axis=(1, 3))
    # JPEG round trips on both levels; the mean error stays small
    assert np.abs(halved - level1).mean() < 3.0


def test_background_is_white_glass(slide_file: Path) -> None:
    with tifffile.TiffFile(slide_file) as tif:
        image = tif.pages[2].asarray()
    corner = image[:16, :16].reshape(-1, 3)
    assert corner.min() >= 235
    assert corner.max() <= 250


def test_lesion_geojson_is_qupath_style_and_inside_the_slide(slide_file: Path) -> None:
    collection = json.loads(lesions_path_for(slide_file).read_text())
    assert collection["type"] == "FeatureCollection"
    assert collection["features"], "seed 5 must have a lesion"
    for feature in collection["features"]:
        assert feature["type"] == "Feature"
        assert feature["geometry"]["type"] == "Polygon"
        ring = np.asarray(feature["geometry"]["coordinates"][0])
        assert ring.shape[0] >= 4
        assert ring.shape[1] == 2
        assert np.allclose(ring[0], ring[-1])  # closed ring
        assert ring[:, 0].min() >= 0
        assert ring[:, 0].max() <= WIDTH
        assert ring[:, 1].min() >= 0
        assert ring[:, 1].max() <= HEIGHT
        properties = feature["properties"]
        assert properties["objectType"] == "annotation"
        assert properties["classification"] == {"name": "Tumor", "color": [200, 0, 0]}


def test_lesions_are_darker_and_denser_in_nuclei_than_normal_tissue(slide_file: Path) -> None:
    downsample = 2
    with tifffile.TiffFile(slide_file) as tif:
        image = tif.pages[1].asarray().astype(np.float32)
    collection = json.loads(lesions_path_for(slide_file).read_text())
    lesion = np.zeros(image.shape[:2], bool)
    for feature in collection["features"]:
        ring = np.asarray(feature["geometry"]["coordinates"][0]) / downsample
        rr, cc = fill_polygon(ring[:, 1], ring[:, 0], shape=lesion.shape)
        lesion[rr, cc] = True
    tissue = image.mean(axis=2) < 225
    # stay clear of the outlines, where normal tissue turns into lesion
    from scipy import ndimage

    inner = ndimage.binary_erosion(lesion, iterations=60) & tissue
    normal = ~ndimage.binary_dilation(lesion, iterations=60) & tissue
    assert inner.sum() > 2000
    assert normal.sum() > 20000
    brightness = image.mean(axis=2)
    # haematoxylin-dark pixels: nuclei
    nuclear = (brightness < 140) & (image[..., 2] > image[..., 0])
    assert brightness[inner].mean() < brightness[normal].mean() - 15
    assert nuclear[inner].mean() > 2.5 * nuclear[normal].mean()


@pytest.mark.slow
def test_a_lesion_free_seed_writes_an_empty_collection(tmp_path: Path) -> None:
    seed = lesion_free_seed()
    out = tmp_path / "clean.tiff"
    result = run_job(generate_demo_slide(out, 2048, 1536, seed=seed))
    assert result.lesion_count == 0
    assert json.loads(lesions_path_for(out).read_text()) == {
        "type": "FeatureCollection",
        "features": [],
    }


def test_about_forty_percent_of_seeds_have_no_lesion() -> None:
    counts = [planned_lesion_count(seed) for seed in range(200)]
    assert 0.3 < counts.count(0) / 200 < 0.5
    assert set(counts) == {0, 1, 2, 3}


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 5])
def test_the_layout_draws_the_planned_lesions_whatever_the_size(seed: int) -> None:
    for width, height in ((2048, 1536), (8192, 4096)):
        layout = make_layout(width, height, np.random.default_rng(seed))
        planned = planned_lesion_count(seed)
        # overlapping lesions merge into one outline
        assert (len(layout.lesion_outlines) > 0) == (planned > 0)
        assert len(layout.lesion_outlines) <= planned


@pytest.mark.slow
def test_cancelling_leaves_no_file_behind(tmp_path: Path) -> None:
    out = tmp_path / "cancelled.tiff"
    job = generate_demo_slide(out, 4096, 3072, seed=1)
    steps = [next(job) for _ in range(4)]
    assert all(isinstance(step, Progress) for step in steps)
    job.close()
    assert list(tmp_path.iterdir()) == []


def test_progress_counts_level0_tiles(tmp_path: Path) -> None:
    steps: list[Progress] = []
    run_job(generate_demo_slide(tmp_path / "p.tiff", 1024, 1024, seed=2), steps.append)
    assert steps[-1].done == steps[-1].total == 4


def test_bad_arguments_are_refused_with_the_path(tmp_path: Path) -> None:
    with pytest.raises(DemoSlideError, match="at least 512"):
        run_job(generate_demo_slide(tmp_path / "tiny.tiff", 100, 100))
    with pytest.raises(DemoSlideError, match="does not exist"):
        run_job(generate_demo_slide(tmp_path / "missing" / "x.tiff", 1024, 1024))


def test_cli_writes_the_slide_and_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "cli slide.tiff"
    status = main(
        ["demo-slide", str(out), "--width", "1024", "--height", "768", "--seed", "3", "--quiet"]
    )
    assert status == 0
    assert out.exists()
    assert lesions_path_for(out).exists()
    assert "1024 x 768" in capsys.readouterr().out
    assert main(["demo-slide", str(tmp_path / "no" / "x.tiff"), "--quiet"]) == 2
