"""The microscopic look of a demo slide: stain textures and the H&E colour model.

Textures are periodic ("toroidal") maps whose side is a multiple of the tile size, so a
tile at any level-0 position is a plain slice of them and neighbouring tiles join without
a seam. Each map holds a stain amount (optical density), not a colour:

- ``normal_nuclei``: small, round, regular haematoxylin nuclei, sparse;
- ``lesion_nuclei``: larger, darker, irregular (pleomorphic), crowded nuclei;
- ``stroma``: eosin fibres, wavy bundles with pale gaps;
- ``grain``: fine noise that keeps flat areas from looking painted.

Colour follows Beer-Lambert: ``I = I0 · exp(-(H · h + E · e))`` with typical stain
vectors ``h``, ``e``; :func:`stain_lut` tabulates it for quantised ``(H, E)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Optical-density stain vectors (RGB) of haematoxylin and eosin, as stain-separation
# methods (Ruifrok & Johnston; Macenko) typically find them on H&E scans.
HAEMATOXYLIN = np.array([0.65, 0.70, 0.29], np.float32)
EOSIN = np.array([0.22, 0.80, 0.56], np.float32)
BACKGROUND = np.array([244.0, 243.0, 246.0], np.float32)
#: fibre directions of the stroma, and how sharply the blend picks one (low: gradual)
STROMA_DIRECTIONS = 8
STROMA_BLEND_GAIN = 4.0
H_MAX = 2.2  # optical density at quantised level 255
E_MAX = 1.6


@dataclass(frozen=True)
class Textures:
    """Periodic stain maps, float32, in optical density units."""

    normal_nuclei: np.ndarray
    lesion_nuclei: np.ndarray
    stroma: np.ndarray
    grain: np.ndarray


def make_textures(rng: np.random.Generator, tile: int = 512) -> Textures:
    """Draw the periodic texture maps; their periods are different multiples of ``tile``.

    Different periods (4, 3 and 2 tiles) keep the repetition of one map from lining up
    with another's, so the eye does not catch it.
    """
    stroma = _stroma(3 * tile, rng)
    normal = _nuclei(
        4 * tile,
        rng,
        per_mpx=120,
        radius=(11, 16),
        aspect=(0.45, 0.9),
        wobble=0.04,
        density=(0.75, 1.0),
        chromatin=0.15,
    )
    lesion = _nuclei(
        4 * tile,
        rng,
        per_mpx=330,
        radius=(15, 26),
        aspect=(0.55, 1.0),
        wobble=0.22,
        density=(1.05, 1.6),
        chromatin=0.35,
    )
    period = 2 * tile
    grain = rng.standard_normal((period, period)).astype(np.float32)
    grain = ndimage.gaussian_filter(grain, 0.8, mode="wrap")
    grain /= grain.std() + 1e-6
    return Textures(normal_nuclei=normal, lesion_nuclei=lesion, stroma=stroma, grain=grain)


def stain_lut(rng: np.random.Generator) -> np.ndarray:
    """``(256 * 256, 3)`` uint8 RGB for quantised ``(H, E)``: index ``H_q * 256 + E_q``.

    Each slide's stain vectors and strength vary a little, as real stainings do.
    """
    h_vec = HAEMATOXYLIN * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    e_vec = EOSIN * rng.uniform(0.92, 1.08, 3).astype(np.float32)
    h = np.linspace(0, H_MAX, 256, dtype=np.float32)[:, None, None]
    e = np.linspace(0, E_MAX, 256, dtype=np.float32)[None, :, None]
    rgb = BACKGROUND * np.exp(-(h * h_vec + e * e_vec))
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8).reshape(256 * 256, 3)


def _nucleus(
    rng: np.random.Generator,
    radius: tuple[float, float],
    aspect: tuple[float, float],
    wobble: float,
    density: tuple[float, float],
    chromatin: float,
) -> np.ndarray:
    """One nucleus: a soft-rimmed, possibly irregular ellipse with grainy chromatin."""
    r = rng.uniform(*radius)
    a = rng.uniform(*aspect)
    angle = rng.uniform(0, np.pi)
    size = int(r * 1.5) + 1
    v, u = np.mgrid[-size : size + 1, -size : size + 1].astype(np.float32)
    c, s = np.cos(angle), np.sin(angle)
    ru = (u * c + v * s) / r
    rv = (-u * s + v * c) / (r * a)
    rho = np.hypot(ru, rv)
    theta = np.arctan2(rv, ru)
    edge = 1.0 + wobble * (
        rng.uniform(-1, 1) * np.cos(2 * theta + rng.uniform(0, 6.3))
        + rng.uniform(-1, 1) * np.cos(3 * theta + rng.uniform(0, 6.3))
        + 0.5 * rng.uniform(-1, 1) * np.cos(5 * theta + rng.uniform(0, 6.3))
    )
    body = np.clip((edge - rho) * r * 0.6, 0.0, 1.0)  # ~1.5 px soft rim
    grain = ndimage.gaussian_filter(rng.standard_normal(body.shape).astype(np.float32), 1.0)
    grain /= grain.std() + 1e-6
    return (body * rng.uniform(*density) * (1.0 + chromatin * grain)).astype(np.float32)


def _stroma(period: int, rng: np.random.Generator) -> np.ndarray:
    """Wavy eosin fibre bundles that follow a smoothly turning direction field.

    A smooth periodic field ``theta(x, y)`` gives the local fibre direction. White noise
    is filtered into long thin streaks along each of :data:`STROMA_DIRECTIONS` evenly
    spaced directions, and every pixel mixes the layers whose direction is near its
    ``theta`` (von Mises weights on the doubled angle), so neighbouring directions
    blend and bundles bend gradually. An earlier version chose sharply among three
    unrelated directions, which drew straight-edged seams across the fibres — visible,
    and a feature a model could learn. Every step is an FFT filter or a pointwise map of
    periodic fields, so the map is periodic: tiles join without a seam.
    """
    noise = rng.standard_normal((period, period)).astype(np.float32)
    spectrum = np.fft.rfft2(noise)
    fy = np.fft.fftfreq(period)[:, None]
    fx = np.fft.rfftfreq(period)[None, :]
    # the direction field varies over ~1 / 0.0018 = 550 px, by about +-70 degrees
    smooth = np.exp(-(fx**2 + fy**2) / 0.0018**2)
    field = np.fft.irfft2(
        np.fft.rfft2(rng.standard_normal((period, period))) * smooth, s=(period, period)
    )
    theta = rng.uniform(0, np.pi) + 1.2 * field / (field.std() + 1e-9)
    fibres = np.zeros((period, period), np.float64)
    total = np.zeros((period, period), np.float64)
    total_sq = np.zeros((period, period), np.float64)
    for angle in np.arange(STROMA_DIRECTIONS) * np.pi / STROMA_DIRECTIONS:
        # frequencies across the fibre pass, along it are cut: long thin streaks
        along = fx * np.cos(angle) + fy * np.sin(angle)
        across = -fx * np.sin(angle) + fy * np.cos(angle)
        gain = np.exp(-((along / 0.006) ** 2) - (across / 0.05) ** 2)
        layer = np.fft.irfft2(spectrum * gain, s=(period, period))
        weight = np.exp(STROMA_BLEND_GAIN * (np.cos(2.0 * (theta - angle)) - 1.0))
        fibres += weight * layer / (layer.std() + 1e-9)
        total += weight
        total_sq += weight**2
    # mixing unit-variance layers with weights w has variance sum(w^2) / sum(w)^2:
    # rescaling keeps the contrast of the fibres even wherever the direction turns
    fibres = fibres / np.sqrt(total_sq)
    fibres = fibres / (fibres.std() + 1e-6)
    # fibres are dense bands with pale clefts between them
    return (0.55 + 0.28 * np.tanh(1.2 * fibres)).astype(np.float32)


def _nuclei(
    period: int,
    rng: np.random.Generator,
    per_mpx: float,
    radius: tuple[float, float],
    aspect: tuple[float, float],
    wobble: float,
    density: tuple[float, float],
    chromatin: float,
) -> np.ndarray:
    """Haematoxylin optical density of nuclei stamped on a periodic map.

    ``per_mpx`` nuclei per million pixels (at 0.25 µm/px: per 250 × 250 µm); radii in
    pixels; ``wobble`` makes outlines irregular; ``density`` is the stain amount range.
    """
    pad = int(radius[1] * 1.6) + 2
    canvas = np.zeros((period + 2 * pad, period + 2 * pad), np.float32)
    # a bank of nucleus shapes, stamped with random flips: drawing every nucleus anew
    # would cost most of a small slide's time
    bank = [_nucleus(rng, radius, aspect, wobble, density, chromatin) for _ in range(48)]
    count = int(per_mpx * period * period / 1e6)
    xs = rng.uniform(0, period, count).astype(int)
    ys = rng.uniform(0, period, count).astype(int)
    picks = rng.integers(0, len(bank), count)
    flips = rng.integers(0, 4, count)
    for x, y, pick, flip in zip(xs, ys, picks, flips):
        value = bank[pick]
        if flip & 1:
            value = value[::-1]
        if flip & 2:
            value = value.T
        size = value.shape[0] // 2
        top, left = y + pad - size, x + pad - size
        region = canvas[top : top + value.shape[0], left : left + value.shape[1]]
        np.maximum(region, value, out=region)
    # fold the padding onto the opposite side: the map is periodic, seams vanish
    core = canvas[pad:-pad, pad:-pad]
    np.maximum(core[:pad, :], canvas[-pad:, pad:-pad], out=core[:pad, :])
    np.maximum(core[-pad:, :], canvas[:pad, pad:-pad], out=core[-pad:, :])
    np.maximum(core[:, :pad], canvas[pad:-pad, -pad:], out=core[:, :pad])
    np.maximum(core[:, -pad:], canvas[pad:-pad, :pad], out=core[:, -pad:])
    corners = (
        (slice(None, pad), slice(None, pad), slice(-pad, None), slice(-pad, None)),
        (slice(None, pad), slice(-pad, None), slice(-pad, None), slice(None, pad)),
        (slice(-pad, None), slice(None, pad), slice(None, pad), slice(-pad, None)),
        (slice(-pad, None), slice(-pad, None), slice(None, pad), slice(None, pad)),
    )
    for cy, cx, sy, sx in corners:
        np.maximum(core[cy, cx], canvas[sy, sx], out=core[cy, cx])
    return np.ascontiguousarray(core)
