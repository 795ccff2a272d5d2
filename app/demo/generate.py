"""The demo-slide job: a procedural H&E slide written tile by tile as a pyramidal TIFF.

Memory stays bounded whatever the size: level-0 tiles are painted one at a time from
coarse fields and periodic textures (see ``layout`` and ``texture``); each finished tile
is encoded, appended to the file and halved into a one-tile-row strip of the next level,
which is encoded and halved in turn when it is full. Tiles of bare glass are encoded once
and their bytes reused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from slidescope.app.demo.tiff_writer import PyramidTiffWriter, TiffLevel
from slidescope.app.errors import SlideScopeError
from slidescope.app.jobs import Job, Progress
from slidescope.models.files import atomic_path

if TYPE_CHECKING:  # scipy and PIL load only when a slide is drawn: the CLI starts fast
    from slidescope.app.demo.layout import DemoLayout
    from slidescope.app.demo.render import TileRenderer

DEFAULT_WIDTH = 50_000
DEFAULT_HEIGHT = 40_000
DEFAULT_MPP = 0.25
TILE = 512
JPEG_QUALITY = 88
SMALLEST_LEVEL = 1024  # the pyramid goes on until a level is smaller than this
LESION_CLASS = {"name": "Tumor", "color": [200, 0, 0]}
#: ``solid``: the bundled model's kind; ``glandular``: one it never saw (see ``glands``)
LESION_KINDS = ("solid", "glandular")


class DemoSlideError(SlideScopeError):
    """The demo slide cannot be written as asked (bad size, unwritable folder, ...)."""


@dataclass(frozen=True)
class DemoSlide:
    """What :func:`generate_demo_slide` wrote.

    Attributes
    ----------
    path : Path
        The pyramidal TIFF.
    lesions_path : Path
        The ground-truth lesion outlines (GeoJSON, level-0 px).
    width, height : int
        Level-0 size.
    mpp : float
        Microns per pixel at level 0.
    seed : int
        The seed that drew the slide.
    lesion_count : int
        Number of lesion outlines (0 for a lesion-free slide).
    level_dimensions : list of (int, int)
        (width, height) of every pyramid level.
    """

    path: Path
    lesions_path: Path
    width: int
    height: int
    mpp: float
    seed: int
    lesion_count: int
    level_dimensions: list[tuple[int, int]]


def lesions_path_for(out: str | Path) -> Path:
    """``slide.tiff`` -> ``slide.lesions.geojson`` beside it."""
    out = Path(out)
    return out.with_name(out.stem + ".lesions.geojson")


def generate_demo_slide(
    out: str | Path,
    width: int = DEFAULT_WIDTH,
    height: int = DEFAULT_HEIGHT,
    seed: int = 0,
    mpp: float = DEFAULT_MPP,
    lesion_kind: str = "solid",
) -> Job[DemoSlide]:
    """Write a deterministic, procedural H&E-like demo slide and its lesion outlines.

    Parameters
    ----------
    out : path
        The TIFF to write (``.tiff``); ``<stem>.lesions.geojson`` is written beside it.
        Both appear only when complete (written to temporary siblings, then renamed).
    width, height : int
        Level-0 size in pixels (default 50,000 × 40,000).
    seed : int
        Same seed, same slide (byte for byte); about 40 % of seeds have no lesion.
    mpp : float
        Microns per pixel at level 0, written as the TIFF resolution.
    lesion_kind : str
        ``solid`` (sheets of crowded, dark, pleomorphic nuclei; the bundled model's kind)
        or ``glandular`` (rings of cells around pale lumens; a kind the bundled model never
        saw). The layout, and so the outlines, depend on the seed alone.

    Yields
    ------
    Progress
        Level-0 tiles done out of all.

    Returns
    -------
    DemoSlide
    """
    out = Path(out)
    if width < TILE or height < TILE:
        raise DemoSlideError(f"{out}: a demo slide needs at least {TILE} × {TILE} px")
    if not mpp > 0:
        raise DemoSlideError(f"{out}: mpp must be positive, got {mpp}")
    if lesion_kind not in LESION_KINDS:
        raise DemoSlideError(
            f"{out}: unknown lesion kind {lesion_kind!r}; use one of {', '.join(LESION_KINDS)}"
        )
    if not out.parent.is_dir():
        raise DemoSlideError(f"{out}: the folder {out.parent} does not exist")

    from slidescope.app.demo.layout import make_layout
    from slidescope.app.demo.render import TileRenderer
    from slidescope.app.demo.texture import make_textures, stain_lut

    yield Progress(0, None, "drawing the layout")
    rng = np.random.default_rng(seed)
    layout = make_layout(width, height, rng)
    textures = make_textures(rng, TILE)
    lut = stain_lut(rng)
    glands = None
    if lesion_kind == "glandular" and layout.lesion_outlines:
        from slidescope.app.demo.glands import make_gland_textures

        # a generator of its own: the solid kind's slides stay byte for byte as they were
        glands = make_gland_textures(np.random.default_rng([seed, 1]), TILE)
    renderer = TileRenderer(layout, textures, lut, TILE, glands)
    levels = _pyramid(width, height, mpp)

    lesions_path = lesions_path_for(out)
    # the outlines are renamed into place first, the slide last: a slide on disk always
    # has its outlines; a stopped run leaves neither
    with atomic_path(out) as tiff_tmp, atomic_path(lesions_path) as geojson_tmp:
        geojson_tmp.write_text(json.dumps(_lesion_geojson(layout, width, height, lesion_kind)))
        with tiff_tmp.open("wb") as fh:
            writer = PyramidTiffWriter(fh, levels, description=_description(width, height, mpp))
            yield from _write_pyramid(writer, renderer)
            writer.finish()
    return DemoSlide(
        path=out,
        lesions_path=lesions_path,
        width=width,
        height=height,
        mpp=mpp,
        seed=seed,
        lesion_count=len(layout.lesion_outlines),
        level_dimensions=[(lv.width, lv.height) for lv in levels],
    )


def _pyramid(width: int, height: int, mpp: float) -> list[TiffLevel]:
    levels = [TiffLevel(width, height, TILE, mpp, reduced=False)]
    w, h, factor = width, height, 1
    while max(w, h) >= SMALLEST_LEVEL:
        w, h, factor = -(-w // 2), -(-h // 2), factor * 2
        levels.append(TiffLevel(w, h, TILE, mpp * factor, reduced=True))
    return levels


def _write_pyramid(writer: PyramidTiffWriter, renderer: TileRenderer) -> Job[None]:
    """Paint level 0 row by row, cascading finished rows down the pyramid."""
    import imagecodecs

    def encode(tile: np.ndarray) -> bytes:
        return bytes(imagecodecs.jpeg_encode(tile, level=JPEG_QUALITY, subsampling="420"))

    background = renderer.render_background()
    background_bytes = encode(background)
    strips = [_Strip(level, background) for level in writer.levels[1:]]
    base = writer.levels[0]
    total = base.tiles_across * base.tiles_down
    done = 0

    def emit(level: int, tx: int, ty: int, tile: np.ndarray | None) -> None:
        """Write a finished tile of ``level`` (None: bare glass) and pass it down."""
        writer.write_tile(level, tx, ty, background_bytes if tile is None else encode(tile))
        if level < len(strips):
            strip = strips[level]
            if tile is not None:
                strip.add(tx, ty, tile)
            above = writer.levels[level]
            row_done = tx == above.tiles_across - 1
            if row_done and (ty % 2 == 1 or ty == above.tiles_down - 1):
                flush(level + 1, strip)

    def flush(level: int, strip: _Strip) -> None:
        for tx in range(strip.level.tiles_across):
            emit(level, tx, strip.row, strip.tile(tx))
        strip.next_row()

    for ty in range(base.tiles_down):
        for tx in range(base.tiles_across):
            x0, y0 = tx * TILE, ty * TILE
            tile = None if renderer.is_background(x0, y0) else renderer.render(x0, y0)
            emit(0, tx, ty, tile)
            done += 1
            if done % 16 == 0 or done == total:
                yield Progress(done, total, f"row {ty + 1}/{base.tiles_down}")


class _Strip:
    """One row of tiles of a reduced level, filled by halving tiles of the level above.

    Level ``k`` has ``ceil(w / 2T)`` tiles across when level ``k - 1`` has ``ceil(w / T)``,
    so the halves of tiles ``2i`` and ``2i + 1`` above always make tile ``i`` here.
    """

    def __init__(self, level: TiffLevel, background: np.ndarray) -> None:
        self.level = level
        self.row = 0
        self._background = background[0, 0].copy()
        self._pixels = np.empty((TILE, level.tiles_across * TILE, 3), np.uint8)
        self._pixels[:] = self._background
        self._painted = np.zeros(level.tiles_across, bool)

    def add(self, tx: int, ty: int, tile: np.ndarray) -> None:
        """Place the 2× reduction of tile (``tx``, ``ty``) of the level above."""
        half = TILE // 2
        x, y = tx * half, (ty % 2) * half
        self._pixels[y : y + half, x : x + half] = _halve(tile)
        self._painted[tx // 2] = True

    def tile(self, tx: int) -> np.ndarray | None:
        """Tile ``tx`` of the current row, or None when it is bare glass."""
        if not self._painted[tx]:
            return None
        return np.ascontiguousarray(self._pixels[:, tx * TILE : (tx + 1) * TILE])

    def next_row(self) -> None:
        self.row += 1
        self._pixels[:] = self._background
        self._painted[:] = False


def _halve(tile: np.ndarray) -> np.ndarray:
    """2× box reduction (mean of 2 × 2, rounded): PIL's C loop is several times numpy's."""
    from PIL import Image

    return np.asarray(Image.fromarray(tile).reduce(2))


def _lesion_geojson(
    layout: DemoLayout, width: int, height: int, lesion_kind: str = "solid"
) -> dict[str, object]:
    """QuPath-style annotations: one Tumor polygon per lesion, level-0 px."""
    features = []
    for ring in layout.lesion_outlines:
        xy = np.stack([np.clip(ring[:, 0], 0, width), np.clip(ring[:, 1], 0, height)], axis=1)
        features.append(
            {
                "type": "Feature",
                "geometry": {"type": "Polygon", "coordinates": [np.round(xy, 1).tolist()]},
                "properties": {
                    "objectType": "annotation",
                    "classification": LESION_CLASS,
                    "lesion_kind": lesion_kind,
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


def _description(width: int, height: int, mpp: float) -> str:
    return f"SlideScope demo slide {width}x{height} mpp={mpp}"
