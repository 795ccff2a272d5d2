"""Helpers for the window tests: small synthetic slides with detail at every scale."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from slidescope.app.slides.slide import Slide


def synthetic_levels(width: int, height: int, n_levels: int, seed: int = 0) -> list[np.ndarray]:
    """A pyramid whose every pixel differs from its neighbours (so any shift shows).

    Level 0 is 4x4-pixel blocks of random colours over a smooth gradient; each coarser
    level is the 2x2 mean of the one above (as a scanner's pyramid is).
    """
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, size=(height // 4 + 1, width // 4 + 1, 3), dtype=np.uint8)
    level0 = np.repeat(np.repeat(blocks, 4, axis=0), 4, axis=1)[:height, :width].copy()
    yy, xx = np.mgrid[0:height, 0:width]
    level0[..., 0] = (level0[..., 0].astype(np.uint16) // 2 + (xx * 127 // width)).astype(np.uint8)
    level0[..., 2] = (level0[..., 2].astype(np.uint16) // 2 + (yy * 127 // height)).astype(
        np.uint8
    )
    levels = [level0]
    for _ in range(1, n_levels):
        a = levels[-1]
        h, w = a.shape[0] // 2 * 2, a.shape[1] // 2 * 2
        a = a[:h, :w].astype(np.uint16)
        levels.append(
            ((a[0::2, 0::2] + a[1::2, 0::2] + a[0::2, 1::2] + a[1::2, 1::2] + 2) // 4).astype(
                np.uint8
            )
        )
    return levels


class ArraySlide(Slide):
    """A slide held in memory (for window tests that need no file format)."""

    closed = False

    def __init__(
        self, path: str | Path, levels: Sequence[np.ndarray], mpp: tuple[float, float] | None
    ) -> None:
        super().__init__(path)
        self._levels = list(levels)
        self._mpp = mpp

    @property
    def format(self) -> str:
        return "in-memory"

    @property
    def levels(self) -> Sequence[Any]:
        return self._levels

    @property
    def properties(self) -> Mapping[str, str]:
        return {"openslide.vendor": "synthetic"}

    @property
    def associated_images(self) -> Mapping[str, np.ndarray]:
        return {}

    def _file_mpp(self) -> tuple[float, float] | None:
        return self._mpp

    def close(self) -> None:
        self.closed = True


def write_pyramid_tiff(path: Path, levels: Sequence[np.ndarray], mpp: float) -> Path:
    """A tiled pyramidal TIFF (sub-IFDs) with the resolution in its tags."""
    import tifffile

    res = (1e4 / mpp, 1e4 / mpp)
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        tif.write(
            levels[0],
            tile=(256, 256),
            subifds=len(levels) - 1,
            resolution=res,
            resolutionunit="CENTIMETER",
            photometric="rgb",
            compression="zlib",
        )
        for i, level in enumerate(levels[1:], start=1):
            tif.write(
                level,
                tile=(256, 256),
                subfiletype=1,
                resolution=(res[0] / 2**i, res[1] / 2**i),
                resolutionunit="CENTIMETER",
                photometric="rgb",
                compression="zlib",
            )
    return path


class SlideFiles:
    """Opens test slides by path: in-memory ones registered here, files through open_slide."""

    def __init__(self) -> None:
        self.slides: dict[Path, tuple[list[np.ndarray], tuple[float, float] | None]] = {}
        self.opened: list[ArraySlide] = []

    def add(
        self, path: Path, levels: list[np.ndarray], mpp: tuple[float, float] | None = (0.5, 0.5)
    ) -> Path:
        path.write_bytes(b"synthetic slide")  # the file exists, as a real one would
        self.slides[path.resolve()] = (levels, mpp)
        return path

    def __call__(self, path: Path) -> Slide:
        key = Path(path).resolve()
        if key in self.slides:
            levels, mpp = self.slides[key]
            slide = ArraySlide(key, levels, mpp)
            self.opened.append(slide)
            return slide
        from slidescope.app.slides import open_slide

        return open_slide(path)


def save_shot(image: np.ndarray, name: str, folder: Path) -> Path:
    """Keep a screenshot for a person to look at, in the test's ``tmp_path``.

    pytest keeps the last runs' temporary folders (``pytest --basetemp DIR`` to choose).
    """
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    Image.fromarray(np.asarray(image)[..., :3]).save(path)
    return path
