"""Paint one level-0 tile of a demo slide from its layout and textures."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from slidescope.app.demo.glands import GlandTextures
from slidescope.app.demo.layout import DemoLayout
from slidescope.app.demo.texture import E_MAX, H_MAX, Textures

# Width in level-0 px over which the tissue edge fades in, and over which normal tissue
# turns into lesion; the ground-truth outline lies at the middle of the latter.
TISSUE_EDGE_PX = 24.0
LESION_EDGE_PX = 160.0

INK_RGB = np.array([40.0, 95.0, 70.0], np.float32)  # a green marker
DEBRIS_RGB = np.array([45.0, 35.0, 40.0], np.float32)


@dataclass(frozen=True)
class TileRenderer:
    """Renders tiles of side ``tile`` (which divides every texture's period).

    With ``glands`` the lesions are of the glandular kind (see :mod:`glands`), otherwise
    solid sheets of crowded pleomorphic nuclei.
    """

    layout: DemoLayout
    textures: Textures
    lut: np.ndarray
    tile: int
    glands: GlandTextures | None = None

    def render_background(self) -> np.ndarray:
        """A tile of bare glass: the colour of zero stain everywhere."""
        return np.broadcast_to(self.lut[0], (self.tile, self.tile, 3)).copy()

    def is_background(self, x0: int, y0: int) -> bool:
        """True when nothing but glass lies under the tile at level-0 ``(x0, y0)``."""
        cell = self.layout.cell
        r0, c0 = max(0, y0 // cell - 2), max(0, x0 // cell - 2)
        r1, c1 = (y0 + self.tile) // cell + 3, (x0 + self.tile) // cell + 3
        window = (slice(r0, r1), slice(c0, c1))
        # the tissue alpha reaches 0 only TISSUE_EDGE_PX/2 outside the outline
        tissue_reach = float(self.layout.tissue[window].max()) > -2 * TISSUE_EDGE_PX
        return not (
            tissue_reach
            or self.layout.ink[window].max() > 0
            or self.layout.debris[window].max() > 0
        )

    def render(self, x0: int, y0: int) -> np.ndarray:
        """The ``(tile, tile, 3)`` uint8 RGB tile whose top-left is level-0 ``(x0, y0)``."""
        t = self.tile
        tissue = self._field(self.layout.tissue, x0, y0)
        lesion_d = self._field(self.layout.lesion, x0, y0)
        cellularity = self._field(self.layout.cellularity, x0, y0)
        grain = _slice(self.textures.grain, x0, y0, t)

        alpha = np.clip(0.5 + tissue / TISSUE_EDGE_PX + 0.05 * grain, 0.0, 1.0)
        lesion = np.clip(0.5 + lesion_d / LESION_EDGE_PX, 0.0, 1.0)
        normal_h = _slice(self.textures.normal_nuclei, x0, y0, t)
        stroma = _slice(self.textures.stroma, x0, y0, t)
        if lesion.any() and self.glands is not None:
            gland_h = np.minimum(_slice(self.glands.haematoxylin, x0, y0, t), 1.6)
            nuclei = normal_h + lesion * (gland_h - normal_h)
            eosin = stroma + lesion * (_slice(self.glands.eosin, x0, y0, t) - stroma)
        elif lesion.any():
            lesion_h = _slice(self.textures.lesion_nuclei, x0, y0, t)
            nuclei = normal_h + lesion * (lesion_h - normal_h)
            # lesions crowd out the fibrous stroma with cells: their cytoplasm keeps the
            # eosin but without fibres, and tints the whole region a dusky purple
            eosin = stroma + lesion * (0.45 - stroma * 0.7)
            nuclei = nuclei + 0.25 * lesion
        else:
            nuclei = normal_h
            eosin = stroma
        haem = nuclei * cellularity + 0.06 + 0.02 * grain
        eosin = eosin * (1.0 - 0.45 * np.minimum(nuclei, 1.0)) + 0.05 + 0.03 * grain
        haem *= alpha
        eosin *= alpha
        h_q = np.clip(haem * (255.0 / H_MAX), 0, 255).astype(np.uint16)
        e_q = np.clip(eosin * (255.0 / E_MAX), 0, 255).astype(np.uint16)
        rgb = self.lut[(h_q << 8) | e_q]
        for field, colour in ((self.layout.ink, INK_RGB), (self.layout.debris, DEBRIS_RGB)):
            if self._touches(field, x0, y0):
                opacity = np.clip(self._field(field, x0, y0), 0.0, 1.0)[..., None]
                rgb = (rgb * (1.0 - opacity) + colour * opacity).astype(np.uint8)
        return rgb

    def _touches(self, field: np.ndarray, x0: int, y0: int) -> bool:
        cell = self.layout.cell
        r0, c0 = max(0, y0 // cell - 2), max(0, x0 // cell - 2)
        r1, c1 = (y0 + self.tile) // cell + 3, (x0 + self.tile) // cell + 3
        return bool(field[r0:r1, c0:c1].max() > 0)

    def _field(self, field: np.ndarray, x0: int, y0: int) -> np.ndarray:
        """Bilinear upsampling of a coarse field onto the tile's pixel centres."""
        cell = self.layout.cell
        # a small crop keeps PIL's work proportional to the tile, not the slide; edge
        # tiles reach past the coarse grid, which then repeats its border values
        c0, r0 = max(0, x0 // cell - 2), max(0, y0 // cell - 2)
        c1, r1 = (x0 + self.tile) // cell + 3, (y0 + self.tile) // cell + 3
        crop = field[r0:r1, c0:c1]
        short_r, short_c = r1 - r0 - crop.shape[0], c1 - c0 - crop.shape[1]
        if short_r or short_c:
            crop = np.pad(crop, ((0, short_r), (0, short_c)), mode="edge")
        crop = np.ascontiguousarray(crop)
        box = (
            x0 / cell - c0,
            y0 / cell - r0,
            (x0 + self.tile) / cell - c0,
            (y0 + self.tile) / cell - r0,
        )
        image = Image.fromarray(crop)
        resized = image.resize((self.tile, self.tile), Image.Resampling.BILINEAR, box=box)
        return np.asarray(resized, dtype=np.float32)


def _slice(texture: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """The tile at level-0 ``(x0, y0)`` of a periodic texture (period a multiple of size)."""
    period_y, period_x = texture.shape
    ys, xs = y0 % period_y, x0 % period_x
    return texture[ys : ys + size, xs : xs + size]
