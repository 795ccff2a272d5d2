"""Fixtures for the slide tests: the slide files of :mod:`slide_builders`, built once."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest
from slide_builders import (
    HE_SIZE,
    write_generic_tiff,
    write_ome_tiff,
    write_ome_zarr,
)


@pytest.fixture(scope="session")
def he_image(aperio_svs: Path) -> np.ndarray:
    """A real H&E region, ``(900, 1200, 3)`` uint8."""
    with openslide.OpenSlide(aperio_svs) as slide:
        rgba = np.asarray(slide.read_region((400, 600), 0, HE_SIZE))
    return np.ascontiguousarray(rgba[..., :3])


@pytest.fixture(scope="session")
def generic_tiff(tmp_path_factory: pytest.TempPathFactory, he_image: np.ndarray) -> Path:
    return write_generic_tiff(tmp_path_factory.mktemp("generic") / "generic.tiff", he_image)


@pytest.fixture(scope="session")
def ome_tiff(tmp_path_factory: pytest.TempPathFactory, he_image: np.ndarray) -> Path:
    return write_ome_tiff(tmp_path_factory.mktemp("ome") / "slide.ome.tiff", he_image)


@pytest.fixture(scope="session")
def ome_zarr_04(tmp_path_factory: pytest.TempPathFactory, he_image: np.ndarray) -> Path:
    return write_ome_zarr(tmp_path_factory.mktemp("zarr04") / "he.ome.zarr", he_image, "0.4")


@pytest.fixture(scope="session")
def ome_zarr_05(tmp_path_factory: pytest.TempPathFactory, he_image: np.ndarray) -> Path:
    return write_ome_zarr(tmp_path_factory.mktemp("zarr05") / "he.ome.zarr", he_image, "0.5")
