"""Where things are on a demo slide: tissue pieces, lesions and artefacts, at low resolution.

The layout is a set of smooth fields on a coarse grid (one cell per ``cell`` level-0 px);
the tile renderer upsamples them. A field is positive inside its object and crosses 0 at
its outline, so the lesion outlines written as ground truth are exactly the 0-contours of
the field the renderer blends lesion texture with.

The lesion rule: the first draw of a seed's random generator is ``u ~ U(0, 1)``; when
``u < 0.4`` the slide has no lesion, otherwise the next draw gives 1 to 3 lesions, each
inside a tissue piece. Drawn first, it depends on the seed alone, never on the slide's
size: :func:`planned_lesion_count` tells it without drawing the slide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

NO_LESION_CHANCE = 0.4


@dataclass(frozen=True)
class DemoLayout:
    """The coarse fields of one demo slide.

    Attributes
    ----------
    cell : int
        Level-0 pixels per field cell; cell ``(i, j)``'s centre is level-0
        ``((j + 0.5) * cell, (i + 0.5) * cell)``.
    tissue : ndarray
        ``(rows, cols)`` float32, about the signed distance (level-0 px) to the nearest
        tissue outline: > 0 inside tissue.
    lesion : ndarray
        ``(rows, cols)`` float32, the same for lesions (> 0 inside; always inside tissue).
    cellularity : ndarray
        ``(rows, cols)`` float32 in about [0.7, 1.3]: slow variation of nuclear density.
    ink : ndarray
        ``(rows, cols)`` float32 in [0, 1]: opacity of a pen mark.
    debris : ndarray
        ``(rows, cols)`` float32 in [0, 1]: opacity of dark debris specks.
    lesion_outlines : list of ndarray
        One ``(n, 2)`` array of level-0 ``(x, y)`` vertices per lesion (closed ring).
    """

    cell: int
    tissue: np.ndarray
    lesion: np.ndarray
    cellularity: np.ndarray
    ink: np.ndarray
    debris: np.ndarray
    lesion_outlines: list[np.ndarray]


def cell_size_for(width: int, height: int) -> int:
    """A power-of-two cell size keeping the coarse grid near 2,048 cells across (≥ 8 px)."""
    cell = 8
    while max(width, height) / cell > 2048:
        cell *= 2
    return cell


def planned_lesion_count(seed: int) -> int:
    """How many lesions the slide of ``seed`` gets (0 for about 40 % of seeds)."""
    return _lesion_count(np.random.default_rng(seed))


def _lesion_count(rng: np.random.Generator) -> int:
    if rng.random() < NO_LESION_CHANCE:
        return 0
    return int(rng.integers(1, 4))


def make_layout(width: int, height: int, rng: np.random.Generator) -> DemoLayout:
    """Draw the tissue pieces, lesions and artefacts of a ``width`` × ``height`` slide.

    ``rng`` must be fresh from ``np.random.default_rng(seed)`` for the lesion rule of
    :func:`planned_lesion_count` to hold.
    """
    lesion_count = _lesion_count(rng)
    cell = cell_size_for(width, height)
    rows, cols = -(-height // cell), -(-width // cell)
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float32)
    xx = (xx + 0.5) * cell
    yy = (yy + 0.5) * cell

    pieces = _tissue_pieces(width, height, rng)
    scale = float(np.mean([p[2] for p in pieces]))
    # fields are in level-0 px (about the signed distance to the outline), so that the
    # renderer's edge widths are physical whatever the slide size
    tissue: np.ndarray = np.full((rows, cols), -scale, np.float32)
    for cx, cy, radius, angle, aspect in pieces:
        blob = _irregular_blob(xx, yy, cx, cy, radius, angle, aspect, rng, lobes=6, wobble=0.22)
        tissue = np.maximum(tissue, blob * radius)
    roughness = _smooth_noise((rows, cols), sigma=max(2.0, 600 / cell), rng=rng)
    tissue = tissue + 0.06 * scale * roughness
    # a few tears and vacuoles where a finer noise dips far below its mean
    holes = _smooth_noise((rows, cols), sigma=max(1.0, 150 / cell), rng=rng)
    tissue = np.minimum(tissue, (holes + 2.3) * 0.1 * scale)

    lesion: np.ndarray = np.full((rows, cols), -scale, np.float32)
    if lesion_count:
        piece_radius = min(p[2] for p in pieces)
        for _ in range(lesion_count):
            # deep inside a piece, so that the lesion is mostly tissue
            margin = min(0.35 * piece_radius, 0.6 * float(tissue.max()))
            centre = _point_inside(tissue, margin=margin, rng=rng)
            if centre is None:
                break
            radius = float(np.clip(rng.uniform(0.3, 0.5) * piece_radius, 8 * cell, 7000))
            cx, cy = (centre[1] + 0.5) * cell, (centre[0] + 0.5) * cell
            blob = _irregular_blob(
                xx,
                yy,
                cx,
                cy,
                radius,
                rng.uniform(0, np.pi),
                rng.uniform(0.6, 1.0),
                rng,
                lobes=7,
                wobble=0.2,
            )
            lesion = np.maximum(lesion, blob * radius)
        lesion = lesion + 0.03 * scale * _smooth_noise(
            (rows, cols), sigma=max(1.5, 300 / cell), rng=rng
        )
        # a lesion is lesion tissue: never outside the tissue it grows in
        lesion = np.minimum(lesion, tissue)

    cellularity = 1.0 + 0.3 * np.tanh(
        _smooth_noise((rows, cols), sigma=max(2.0, 1500 / cell), rng=rng)
    )
    ink = _pen_mark(xx, yy, width, height, cell, rng)
    debris = _debris(rows, cols, cell, rng)
    return DemoLayout(
        cell=cell,
        tissue=tissue.astype(np.float32),
        lesion=lesion.astype(np.float32),
        cellularity=cellularity.astype(np.float32),
        ink=ink.astype(np.float32),
        debris=debris.astype(np.float32),
        lesion_outlines=_outlines(lesion, cell),
    )


def _tissue_pieces(
    width: int, height: int, rng: np.random.Generator
) -> list[tuple[float, float, float, float, float]]:
    """3 to 5 pieces, spread over a grid of the slide so that they rarely overlap."""
    n = int(rng.integers(3, 6))
    grid_cols = 3 if width >= height else 2
    grid_rows = 2 if width >= height else 3
    slots = rng.permutation(grid_cols * grid_rows)[:n]
    slot_w, slot_h = width / grid_cols, height / grid_rows
    pieces = []
    for slot in slots:
        col, row = slot % grid_cols, slot // grid_cols
        radius = rng.uniform(0.32, 0.44) * min(slot_w, slot_h)
        cx = (col + 0.5 + rng.uniform(-0.12, 0.12)) * slot_w
        cy = (row + 0.5 + rng.uniform(-0.12, 0.12)) * slot_h
        pieces.append((cx, cy, radius, rng.uniform(0, np.pi), rng.uniform(0.55, 1.0)))
    return pieces


def _irregular_blob(
    xx: np.ndarray,
    yy: np.ndarray,
    cx: float,
    cy: float,
    radius: float,
    angle: float,
    aspect: float,
    rng: np.random.Generator,
    lobes: int,
    wobble: float,
) -> np.ndarray:
    """``1 - ρ / r(θ)``: positive inside an ellipse whose outline wobbles with ``lobes``.

    Computed within 3 radii of the centre only; beyond, where the value is below -1 (far
    outside the outline, which never shows), it is -1.
    """
    blob = np.full(xx.shape, -1.0, np.float32)
    harmonics = [
        ((wobble / k**0.7) * rng.uniform(0.3, 1.0), k, rng.uniform(0, 6.3))
        for k in range(2, lobes + 1)
    ]
    cols = np.nonzero(np.abs(xx[0] - cx) < 3 * radius)[0]
    rows = np.nonzero(np.abs(yy[:, 0] - cy) < 3 * radius)[0]
    if len(rows) == 0 or len(cols) == 0:
        return blob
    window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    dx, dy = xx[window] - cx, yy[window] - cy
    c, s = np.cos(angle), np.sin(angle)
    u = (dx * c + dy * s) / radius
    v = (-dx * s + dy * c) / (radius * aspect)
    rho = np.hypot(u, v)
    theta = np.arctan2(v, u)
    edge = np.ones_like(rho)
    for amplitude, k, phase in harmonics:
        edge += amplitude * np.cos(k * theta + phase)
    blob[window] = np.maximum(1.0 - rho / np.maximum(edge, 0.3), -1.0)
    return blob


def _smooth_noise(shape: tuple[int, int], sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-filtered white noise scaled to unit standard deviation.

    Filtered in the Fourier domain: its cost does not grow with ``sigma``, which reaches
    hundreds of cells for slide-wide variations.
    """
    noise = rng.standard_normal(shape).astype(np.float32)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.rfftfreq(shape[1])[None, :]
    gain = np.exp(-2.0 * (np.pi * sigma) ** 2 * (fx**2 + fy**2))
    smooth = np.fft.irfft2(np.fft.rfft2(noise) * gain, s=shape).astype(np.float32)
    smooth -= smooth.mean()
    return (smooth / (smooth.std() + 1e-6)).astype(np.float32)


def _point_inside(
    field: np.ndarray, margin: float, rng: np.random.Generator
) -> tuple[int, int] | None:
    candidates = np.argwhere(field > margin)
    if len(candidates) == 0:
        return None
    row, col = candidates[int(rng.integers(len(candidates)))]
    return int(row), int(col)


def _pen_mark(
    xx: np.ndarray, yy: np.ndarray, width: int, height: int, cell: int, rng: np.random.Generator
) -> np.ndarray:
    """A curved marker stroke near one edge of the slide (half of the slides have one)."""
    if rng.random() < 0.5:
        return np.zeros_like(xx)
    t = np.linspace(0, 1, 200)
    y0 = rng.uniform(0.05, 0.95) * height
    x_start = rng.uniform(0.0, 0.1) * width
    length = rng.uniform(0.1, 0.25) * width
    path_x = x_start + t * length
    path_y = y0 + 0.08 * height * np.sin(t * np.pi * rng.uniform(0.5, 1.5))
    half_width = max(2.5 * cell, 0.004 * width)
    # distance to the stroke, computed only in the band of cells the stroke can reach
    reach = half_width + 2 * cell
    rows = np.nonzero((yy[:, 0] > path_y.min() - reach) & (yy[:, 0] < path_y.max() + reach))[0]
    cols = np.nonzero((xx[0] > path_x.min() - reach) & (xx[0] < path_x.max() + reach))[0]
    ink = np.zeros(xx.shape, np.float32)
    if len(rows) and len(cols):
        window = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        bx, by = xx[window], yy[window]
        distance = np.full(bx.shape, np.inf, np.float32)
        for px, py in zip(path_x[::2], path_y[::2]):
            distance = np.minimum(distance, np.hypot(bx - px, by - py))
        ink[window] = np.clip((half_width - distance) / cell, 0.0, 1.0) * 0.85
    return ink


def _debris(rows: int, cols: int, cell: int, rng: np.random.Generator) -> np.ndarray:
    """A few dark specks a few dozen µm across, anywhere on the slide."""
    debris = np.zeros((rows, cols), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        r, c = int(rng.integers(rows)), int(rng.integers(cols))
        debris[r, c] = 1.0
    sigma = max(0.7, 60 / cell)
    debris = ndimage.gaussian_filter(debris, sigma)
    # a hard edge: debris is opaque grit, not a shadow
    return np.clip((debris / (debris.max() + 1e-9) - 0.35) * 6.0, 0.0, 0.95)


def _outlines(lesion: np.ndarray, cell: int) -> list[np.ndarray]:
    """The 0-contour of each connected lesion region, holes filled, in level-0 (x, y)."""
    from skimage import measure

    inside = ndimage.binary_fill_holes(lesion > 0)
    labels, count = ndimage.label(inside)
    outlines = []
    for index in range(1, count + 1):
        region = labels == index
        if region.sum() < 4:  # a speck of the noise, not a lesion
            continue
        own = ndimage.binary_dilation(region, iterations=1)
        field = np.where(own, lesion, -1.0)
        field[region & (lesion <= 0)] = 1e-3  # filled holes are inside
        padded = np.pad(field, 1, constant_values=-1.0)
        contours = measure.find_contours(padded, 0.0)
        ring = max(contours, key=len)
        ring = measure.approximate_polygon(ring, tolerance=0.3)
        rows_, cols_ = ring[:, 0] - 1, ring[:, 1] - 1
        xy = np.stack([(cols_ + 0.5) * cell, (rows_ + 0.5) * cell], axis=1)
        if not np.allclose(xy[0], xy[-1]):
            xy = np.vstack([xy, xy[:1]])
        outlines.append(xy)
    return outlines
