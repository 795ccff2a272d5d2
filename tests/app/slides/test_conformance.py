"""One conformance suite that every slide backend passes (as zarr.testing does for stores).

Each case opens one slide through one backend and says what it must find; every test runs
over every case: pixels against OpenSlide's ``read_region`` on the same file, every level a
downsampled level 0, mpp, dimensions, downsamples, properties, associated images, white
padding outside the slide, thumbnail and identity.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import openslide
import pytest
from slide_builders import GENERIC_MPP, OME_MPP, downsample
from slidescope.app.slides import Slide, SlideIdentity, open_slide
from slidescope.app.slides.omezarr_slide import OmeZarrSlide
from slidescope.app.slides.openslide_slide import OpenSlideSlide
from slidescope.app.slides.tiff_slide import TiffSlide

Reference = Callable[[tuple[int, int], int, tuple[int, int]], np.ndarray]


@dataclass
class SlideCase:
    """A slide opened through one backend, and what it must look like."""

    slide: Slide
    backend: type[Slide]
    format: str
    dimensions: tuple[int, int]
    mpp: tuple[float, float] | None
    downsamples: list[float]
    associated: set[str]
    # Level 0 pixels as the reference reader sees them (OpenSlide, or the written array).
    reference: Reference
    # Where the reference is OpenSlide on the same file: its properties must be ours too.
    openslide_properties: dict[str, str] | None = None
    openslide_associated: dict[str, np.ndarray] = field(default_factory=dict)


def _openslide_reference(path: Path) -> tuple[Reference, dict[str, str], dict[str, np.ndarray]]:
    handle = openslide.OpenSlide(path)

    def read(location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        rgba = np.asarray(handle.read_region(location, level, size)).astype(np.uint16)
        # Transparent (outside the slide) over white, as the Slide contract promises.
        alpha = rgba[..., 3:4]
        return ((rgba[..., :3] * alpha + 255 * (255 - alpha) + 127) // 255).astype(np.uint8)

    associated = {
        name: np.asarray(image.convert("RGB")) for name, image in handle.associated_images.items()
    }
    return read, dict(handle.properties), associated


def _array_reference(image: np.ndarray) -> Reference:
    def read(location: tuple[int, int], level: int, size: tuple[int, int]) -> np.ndarray:
        assert level == 0
        (x, y), (w, h) = location, size
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + w, image.shape[1]), min(y + h, image.shape[0])
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = image[y0:y1, x0:x1]
        return out

    return read


CASES = [
    "aperio-svs",
    "generic-tiff",
    "ome-tiff",
    "openslide-svs",
    "openslide-generic-tiff",
    "ome-zarr-0.4",
    "ome-zarr-0.5",
]


@pytest.fixture(params=CASES)
def case(request: pytest.FixtureRequest, he_image: np.ndarray) -> Iterator[SlideCase]:
    name = request.param
    size = (he_image.shape[1], he_image.shape[0])
    if name in ("aperio-svs", "openslide-svs"):
        path = request.getfixturevalue("aperio_svs")
        reference, props, associated = _openslide_reference(path)
        slide = open_slide(path) if name == "aperio-svs" else OpenSlideSlide(path)
        made = SlideCase(
            slide,
            TiffSlide if name == "aperio-svs" else OpenSlideSlide,
            "aperio",
            (2220, 2967),
            (0.499, 0.499),
            [1.0],
            {"label", "macro", "thumbnail"},
            reference,
            props,
            associated,
        )
    elif name in ("generic-tiff", "openslide-generic-tiff"):
        path = request.getfixturevalue("generic_tiff")
        reference, props, associated = _openslide_reference(path)
        slide = open_slide(path) if name == "generic-tiff" else OpenSlideSlide(path)
        backend = TiffSlide if name == "generic-tiff" else OpenSlideSlide
        mpp = (GENERIC_MPP, GENERIC_MPP)
        made = SlideCase(
            slide, backend, "generic-tiff", size, mpp, [1.0, 2.0, 4.0], set(), reference, props
        )
    elif name == "ome-tiff":
        path = request.getfixturevalue("ome_tiff")
        # OpenSlide reads an OME-TIFF's level 0 as a generic TIFF: same tiles, same pixels.
        reference, _, _ = _openslide_reference(path)
        slide = open_slide(path)
        mpp = (OME_MPP, OME_MPP)
        made = SlideCase(
            slide, TiffSlide, "ome-tiff", size, mpp, [1.0, 2.0, 4.0], {"label"}, reference
        )
    else:
        path = request.getfixturevalue("ome_zarr_04" if name.endswith("0.4") else "ome_zarr_05")
        slide = open_slide(path)
        mpp = (OME_MPP, OME_MPP)
        made = SlideCase(
            slide,
            OmeZarrSlide,
            "ome-zarr",
            size,
            mpp,
            [1.0, 2.0, 4.0],
            set(),
            _array_reference(he_image),
        )
    yield made
    made.slide.close()


# Level-0 windows: inside one tile, across tile seams, at the far corner, odd sizes.
WINDOWS = [((0, 0), (64, 48)), ((200, 230), (300, 200)), ((250, 250), (13, 7))]


def test_backend_and_format(case: SlideCase) -> None:
    assert type(case.slide) is case.backend
    assert case.slide.format == case.format


def test_level0_pixels_match_reference(case: SlideCase) -> None:
    w, h = case.dimensions
    windows = [*WINDOWS, ((w - 300, h - 200), (300, 200))]
    for location, size in windows:
        ours = case.slide.read_region(location, 0, size)
        expected = case.reference(location, 0, size)
        assert ours.shape == (size[1], size[0], 3)
        assert ours.dtype == np.uint8
        # Same codec (libjpeg-turbo) on both sides: the pixels match exactly.
        np.testing.assert_array_equal(ours, expected)


def test_level_arrays_match_read_region(case: SlideCase) -> None:
    for level, array in enumerate(case.slide.levels):
        assert array.ndim == 3
        assert array.shape[2] == 3
        assert np.dtype(array.dtype) == np.uint8
        ds = case.slide.downsamples[level]
        block = np.asarray(array[10:60, 20:100])
        region = case.slide.read_region((round(20 * ds), round(10 * ds)), level, (80, 50))
        np.testing.assert_array_equal(block, region)


# Indexing a level must behave as indexing the numpy array of that level.
INDEX_KEYS = [
    (5, 7),
    (slice(1, 9), 3),
    (slice(2, 10), slice(3, 8), 1),
    (Ellipsis, 0),
    (slice(0, 20, 3), slice(0, 10)),
    (slice(-4, None), slice(-6, -1), slice(0, 2)),
    (-1, -1, -1),
    7,
]


def test_levels_index_like_numpy(case: SlideCase) -> None:
    level = case.slide.levels[-1]
    full = np.asarray(level[:, :])
    for key in INDEX_KEYS:
        np.testing.assert_array_equal(np.asarray(level[key]), full[key], err_msg=repr(key))


def test_every_level_is_downsampled_level0(case: SlideCase) -> None:
    level0 = np.asarray(case.slide.levels[0][:, :])
    for level in range(1, len(case.slide.levels)):
        pixels = np.asarray(case.slide.levels[level][:, :])
        factor = round(case.slide.downsamples[level])
        expected = downsample(level0, factor)
        h, w = min(len(pixels), len(expected)), min(pixels.shape[1], expected.shape[1])
        difference = np.abs(pixels[:h, :w].astype(int) - expected[:h, :w].astype(int))
        assert difference.mean() < 4, f"level {level} is not level 0 downsampled"
        assert pixels.std() > 10, f"level {level} is flat: no tissue"


def test_geometry(case: SlideCase) -> None:
    slide = case.slide
    assert slide.dimensions == case.dimensions
    assert slide.downsamples == pytest.approx(case.downsamples, rel=1e-3)
    assert len(slide.levels) == len(case.downsamples)
    w, h = case.dimensions
    for (lw, lh), ds in zip(slide.level_dimensions, slide.downsamples):
        assert abs(lw * ds - w) <= ds
        assert abs(lh * ds - h) <= ds
    assert slide.best_level_for_downsample(1.0) == 0
    assert slide.best_level_for_downsample(1000.0) == len(slide.levels) - 1


def test_mpp(case: SlideCase) -> None:
    assert case.slide.mpp == pytest.approx(case.mpp)
    assert case.slide.require_mpp() == pytest.approx(case.mpp)


def test_properties(case: SlideCase) -> None:
    props = case.slide.properties
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in props.items())
    assert props["openslide.vendor"] == case.format
    assert float(props["openslide.mpp-x"]) == pytest.approx(case.mpp[0])
    assert float(props["openslide.mpp-y"]) == pytest.approx(case.mpp[1])
    assert int(props["openslide.level-count"]) == len(case.slide.levels)
    if case.openslide_properties is not None:
        # OpenSlide's names and values, except its own content hash.
        expected = dict(case.openslide_properties)
        expected.pop("openslide.quickhash-1", None)
        assert {k: props.get(k) for k in expected} == expected


def test_associated_images(case: SlideCase) -> None:
    images = case.slide.associated_images
    assert set(images) == case.associated
    for name in images:
        image = images[name]
        assert image.ndim == 3
        assert image.shape[2] == 3
        assert image.dtype == np.uint8
        if name in case.openslide_associated:
            np.testing.assert_array_equal(image, case.openslide_associated[name])
    with pytest.raises(KeyError):
        images["no-such-image"]


@pytest.mark.parametrize("level", [0, -1])
def test_outside_the_slide_is_white(case: SlideCase, level: int) -> None:
    level = level % len(case.slide.levels)
    ds = case.slide.downsamples[level]
    w, h = case.dimensions
    corner = case.slide.read_region((round(-50 * ds), round(-30 * ds)), level, (100, 60))
    assert (corner[:30, :] == 255).all()
    assert (corner[:, :50] == 255).all()
    inside = case.slide.read_region((0, 0), level, (50, 30))
    np.testing.assert_array_equal(corner[30:, 50:], inside)
    beyond = case.slide.read_region((w + 10, h + 10), level, (40, 40))
    assert (beyond == 255).all()


def test_thumbnail(case: SlideCase) -> None:
    thumbnail = case.slide.thumbnail(max_size=256)
    w, h = case.dimensions
    assert max(thumbnail.shape[:2]) == 256
    assert thumbnail.shape[1] / thumbnail.shape[0] == pytest.approx(w / h, rel=0.02)
    assert thumbnail.dtype == np.uint8
    assert thumbnail.std() > 10


def test_identity(case: SlideCase) -> None:
    identity = case.slide.identity
    assert isinstance(identity, SlideIdentity)
    assert (identity.width, identity.height) == case.dimensions
    assert identity.mpp == pytest.approx(case.mpp)
    assert len(identity.fingerprint) == 16
    assert SlideIdentity.from_dict(identity.to_dict()) == identity
    with open_slide(case.slide.path) as again:
        assert again.identity == identity


def test_mpp_override(case: SlideCase) -> None:
    with open_slide(case.slide.path, mpp=0.3) as slide:
        assert slide.mpp == (0.3, 0.3)
        assert slide.identity.mpp == (0.3, 0.3)


def test_reads_from_two_threads_agree(case: SlideCase) -> None:
    w, h = case.dimensions
    rng = np.random.default_rng(0)
    spots = [(int(rng.integers(0, w - 128)), int(rng.integers(0, h - 128))) for _ in range(24)]
    serial = [case.slide.read_region(spot, 0, (128, 128)) for spot in spots]
    with ThreadPoolExecutor(2) as pool:
        parallel = list(pool.map(lambda s: case.slide.read_region(s, 0, (128, 128)), spots))
    for a, b in zip(serial, parallel):
        np.testing.assert_array_equal(a, b)
