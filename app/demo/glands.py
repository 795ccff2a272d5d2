"""The second demo lesion kind: glandular growth, as stain maps.

The first kind (``solid``) is sheets of crowded, dark, pleomorphic nuclei. The glandular
kind looks different at every scale the features see: round glands whose pale, empty
lumens are lined by one ring of tall cells, their nuclei elongated and lined up along the
ring (radially oriented), pink cytoplasm between nucleus and lumen, and thin pale stroma
between glands. Like :mod:`texture`, the maps are periodic (a multiple of the tile side),
so a tile is a plain slice of them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class GlandTextures:
    """Periodic haematoxylin and eosin optical density of glandular tissue (float32)."""

    haematoxylin: np.ndarray
    eosin: np.ndarray


def make_gland_textures(rng: np.random.Generator, tile: int = 512) -> GlandTextures:
    """Draw glands on a jittered grid of a ``4 * tile`` periodic map.

    Sizes are in level-0 px at 0.25 µm/px: glands about 50–70 µm across, lumens 15–30 µm.
    """
    period = 4 * tile
    spacing = 240
    n = period // spacing
    haem = np.zeros((period, period), np.float32)
    eosin = np.full((period, period), 0.22, np.float32)  # loose stroma between glands
    yy, xx = np.mgrid[0:period, 0:period].astype(np.float32)
    for row in range(n):
        for col in range(n):
            cx = (col + 0.5) * spacing + rng.uniform(-40, 40)
            cy = (row + 0.5) * spacing + rng.uniform(-40, 40)
            lumen = rng.uniform(32, 60)
            wall = rng.uniform(34, 44)
            _stamp_gland(haem, eosin, xx, yy, cx, cy, lumen, wall, rng, period)
    grain = ndimage.gaussian_filter(rng.standard_normal((period, period)), 1.0, mode="wrap")
    haem *= (1.0 + 0.25 * grain / (grain.std() + 1e-6)).astype(np.float32)
    return GlandTextures(np.clip(haem, 0, None).astype(np.float32), eosin.astype(np.float32))


def _stamp_gland(
    haem: np.ndarray,
    eosin: np.ndarray,
    xx: np.ndarray,
    yy: np.ndarray,
    cx: float,
    cy: float,
    lumen: float,
    wall: float,
    rng: np.random.Generator,
    period: int,
) -> None:
    reach = int(lumen + wall + 6)
    for dy in (-period, 0, period):  # wrap around: the map is periodic
        for dx in (-period, 0, period):
            x0, y0 = int(cx + dx) - reach, int(cy + dy) - reach
            x1, y1 = x0 + 2 * reach + 1, y0 + 2 * reach + 1
            if x1 <= 0 or y1 <= 0 or x0 >= period or y0 >= period:
                continue
            sx, sy = slice(max(x0, 0), min(x1, period)), slice(max(y0, 0), min(y1, period))
            u, v = xx[sy, sx] - (cx + dx), yy[sy, sx] - (cy + dy)
            rho = np.hypot(u, v)
            theta = np.arctan2(v, u)
            cells = max(10, int(2 * np.pi * (lumen + wall / 2) / 14))
            phase = rng.uniform(0, 2 * np.pi) if (dx, dy) == (0, 0) else 0.0
            # nuclei: a ring at the base of the cells (away from the lumen), each one an
            # ellipse elongated along the radius
            base = lumen + 0.68 * wall
            angular = np.cos(cells * theta + phase)
            nucleus = np.clip(1.0 - ((rho - base) / 9.0) ** 2, 0, None) * np.clip(
                (angular - 0.25) * 2.0, 0, 1
            )
            cytoplasm = ((rho > lumen) & (rho < lumen + wall)).astype(np.float32)
            inside = rho < lumen
            h_view, e_view = haem[sy, sx], eosin[sy, sx]
            np.maximum(h_view, 1.25 * nucleus, out=h_view)
            e_view[:] = np.where(inside, 0.02, np.where(cytoplasm > 0, 0.62, e_view))
            h_view[inside] = 0.0
