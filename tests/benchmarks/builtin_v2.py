"""The ``builtin`` extractor as it was at version 2: the baseline of the extractor benchmark.

Kept verbatim (less its registration) so that ``test_extract.py`` can measure the CPU per
patch of the current ``builtin`` against it in the same run. Not used by the program.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from slidescope.models.extractors.base import ExtractorSpec, FeatureExtractor
from torch import Tensor

# Ruifrok & Johnston colour deconvolution (the matrix of skimage.color.hed_from_rgb):
# optical density (OD) rows -> haematoxylin, eosin, DAB.
_HED_FROM_RGB = (
    (1.87798274, -1.00767869, -0.55611582),
    (-0.06590806, 1.13473037, -0.1355218),
    (-0.60190736, -0.48041419, 1.57358807),
)
_QUANTILES = (0.1, 0.5, 0.9)
# Haematoxylin thresholds (OD units after deconvolution): any nucleus, dark nucleus.
_H_NUCLEUS = 0.25
_H_DARK = 0.5
_OD_TISSUE = 0.3
_OPENINGS = (3, 5, 7, 9)  # square openings at ~1 µm/px: 3 to 9 µm
_GRADIENT_EDGES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45)  # 8 bins
_LAPLACIAN_SCALES = (1, 2, 4, 8)

BUILTIN_DIM = (
    3 * (2 + len(_QUANTILES))  # RGB
    + 3 * (2 + len(_QUANTILES))  # H, E, D
    + 3  # OD
    + 7
    + 2 * len(_OPENINGS)  # nuclei
    + len(_GRADIENT_EDGES)
    + 2  # gradient histogram + mean + std
    + 9  # neighbour-count histogram
    + 2 * len(_LAPLACIAN_SCALES)  # Laplacian energies
)


class BuiltinExtractorV2(FeatureExtractor):
    """Hand-made features of an H&E patch, no weights (``BUILTIN_DIM`` = 74 values).

    For a batch of RGB patches in [0, 1] (any size; calibrated for 0.5 µm/px), first
    average-pooled 2 x 2 (to ~1 µm/px; patches under 64 px are taken as they are), per patch:

    1. RGB (15): per channel mean, standard deviation, 10th/50th/90th percentiles.
    2. Stains (15): colour deconvolution (Ruifrok & Johnston, as ``skimage.color.rgb2hed``)
       of the optical density ``OD = -ln(max(I, 1/255))`` into haematoxylin, eosin and DAB;
       per stain mean, standard deviation, 10th/50th/90th percentiles.
    3. Optical density (3): mean and standard deviation of the summed OD, share of pixels
       with summed OD > 0.3 (tissue share).
    4. Nuclei (15), from the haematoxylin channel smoothed 3x3, in this order: share of
       pixels with H > 0.25 (nuclear area) and with H > 0.5 (dark nuclei); mean and
       standard deviation of H inside the nuclear mask (darkness, chromatin texture);
       nuclei per 10^4 px counted as local maxima of H above 0.25 in 5x5 and 9x9 windows
       (density at two scales); boundary share (mask minus its 3x3 erosion, over the
       mask: small or irregular nuclei give more); then a granulometry: for square
       openings of 3, 5, 7, 9 px, the surviving share of the patch and of the mask (size
       of nuclei).
    5. Gradients (9): Sobel gradient magnitude of the grey image, the share of pixels in
       each of 7 bins above 0.02 (edges 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.45, open-ended
       last), its mean and its standard deviation.
    6. Local pattern (9): histogram of the number (0-8) of 8-neighbours of each pixel
       whose smoothed H exceeds the centre by 0.02 (a rotation-invariant local binary
       pattern).
    7. Laplacian energies (8): mean absolute 3x3 Laplacian of H and of grey after average
       pooling by 1, 2, 4, 8 (texture at about 1 to 8 µm/px).
    """

    def __init__(self) -> None:
        super().__init__(
            ExtractorSpec(
                name="builtin",
                input_size=None,
                mean=(0.0, 0.0, 0.0),
                std=(1.0, 1.0, 1.0),
                feature_dim=BUILTIN_DIM,
                weights="none: computed from pixels",
                needs_weights=False,
                mixed_precision=False,
                version="2",
            )
        )
        self.register_buffer("hed_from_rgb", torch.tensor(_HED_FROM_RGB), persistent=False)
        self.register_buffer(
            "laplacian",
            torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]]).view(1, 1, 3, 3),
            persistent=False,
        )
        sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]]) / 8.0
        self.register_buffer("sobel", torch.stack([sobel, sobel.T]).unsqueeze(1), persistent=False)
        self.register_buffer("gradient_edges", torch.tensor(_GRADIENT_EDGES), persistent=False)
        self.register_buffer("quantiles", torch.tensor(_QUANTILES), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        x = x.float()
        if min(x.shape[-2:]) >= 64:
            # ~1 µm/px keeps nuclei 5-15 px wide and costs a quarter of full resolution
            x = F.avg_pool2d(x, 2, ceil_mode=True)
        x = x.contiguous()
        b = x.shape[0]
        od = -torch.log(x.clamp(min=1.0 / 255.0))
        hed = torch.einsum("sc,bchw->bshw", self.hed_from_rgb, od).clamp_(min=0.0)
        grey = x.mean(dim=1, keepdim=True)
        h = hed[:, :1]
        parts = [
            _channel_stats(x, self.quantiles),
            _channel_stats(hed, self.quantiles),
        ]
        od_sum = od.sum(dim=1).flatten(1)
        parts.append(
            torch.stack(
                [od_sum.mean(1), od_sum.std(1), (od_sum > _OD_TISSUE).float().mean(1)], dim=1
            )
        )
        parts.append(self._nuclei(h))
        parts.append(self._gradients(grey))
        parts.append(self._neighbour_pattern(h))
        parts.append(self._laplacian_energies(h, grey))
        features = torch.cat(parts, dim=1)
        return features.reshape(b, -1)

    def _nuclei(self, h: Tensor) -> Tensor:
        smooth = F.avg_pool2d(h, 3, stride=1, padding=1, count_include_pad=False)
        mask = (smooth > _H_NUCLEUS).float()
        area = mask.flatten(1).mean(1)
        dark = (smooth > _H_DARK).float().flatten(1).mean(1)
        mask_px = mask.flatten(1).sum(1).clamp(min=1.0)
        inside = (smooth * mask).flatten(1).sum(1) / mask_px
        inside_sq = (smooth.square() * mask).flatten(1).sum(1) / mask_px
        inside_std = (inside_sq - inside.square()).clamp(min=0.0).sqrt()
        n_px = float(mask[0].numel())
        densities = []
        for window in (5, 9):
            peaks = (smooth == _max_filter(smooth, window)) & (smooth > _H_NUCLEUS)
            densities.append(peaks.float().flatten(1).sum(1) * (1e4 / n_px))
        boundary = (mask - _min_filter(mask, 3)).flatten(1).sum(1) / mask_px
        granulometry = []
        for k in _OPENINGS:
            opened = _max_filter(_min_filter(mask, k), k).flatten(1)
            granulometry.append(opened.mean(1))
            granulometry.append(opened.sum(1) / mask_px)
        return torch.stack(
            [area, dark, inside, inside_std, *densities, boundary, *granulometry], dim=1
        )

    def _gradients(self, grey: Tensor) -> Tensor:
        g = F.conv2d(F.pad(grey, (1, 1, 1, 1), mode="replicate"), self.sobel)
        magnitude = g.square().sum(1).sqrt().flatten(1)
        bins = torch.bucketize(magnitude, self.gradient_edges)
        counts = torch.zeros(magnitude.shape[0], len(_GRADIENT_EDGES) + 1, device=grey.device)
        counts.scatter_add_(1, bins, torch.ones_like(magnitude))
        hist = counts[:, 1:] / magnitude.shape[1]  # the flat bin (< 0.02) is implied
        return torch.cat(
            [hist, magnitude.mean(1, keepdim=True), magnitude.std(1, keepdim=True)], 1
        )

    def _neighbour_pattern(self, h: Tensor) -> Tensor:
        smooth = F.avg_pool2d(h, 3, stride=1, padding=1, count_include_pad=False)
        padded = F.pad(smooth, (1, 1, 1, 1), mode="replicate")
        height, width = smooth.shape[-2:]
        count = torch.zeros_like(smooth)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                if dy == 1 and dx == 1:
                    continue
                count += (padded[..., dy : dy + height, dx : dx + width] > smooth + 0.02).float()
        codes = count.flatten(1).long()
        hist = torch.zeros(codes.shape[0], 9, device=h.device)
        hist.scatter_add_(1, codes, torch.ones_like(codes, dtype=hist.dtype))
        return hist / codes.shape[1]

    def _laplacian_energies(self, h: Tensor, grey: Tensor) -> Tensor:
        energies = []
        for image in (h, grey):
            for scale in _LAPLACIAN_SCALES:
                pooled = F.avg_pool2d(image, scale, ceil_mode=True) if scale > 1 else image
                lap = F.conv2d(F.pad(pooled, (1, 1, 1, 1), mode="replicate"), self.laplacian)
                energies.append(lap.abs().flatten(1).mean(1))
        return torch.stack(energies, dim=1)


def _channel_stats(x: Tensor, quantiles: Tensor) -> Tensor:
    """Per channel mean, std and quantiles (quantiles from every other pixel, for speed)."""
    flat = x.flatten(2)
    sample = x[..., ::2, ::2].flatten(2)
    ordered = sample.sort(dim=-1).values
    index = (quantiles * (ordered.shape[-1] - 1)).round().long()
    picked = ordered[..., index]  # (B, C, Q)
    stats = torch.cat([flat.mean(-1, keepdim=True), flat.std(-1, keepdim=True), picked], dim=-1)
    return stats.flatten(1)


def _max_filter(x: Tensor, k: int) -> Tensor:
    """Square k x k maximum filter, separable (two 1-D passes), same size as ``x``."""
    pad = k // 2
    x = F.max_pool2d(F.pad(x, (pad, pad, 0, 0), value=float("-inf")), (1, k), stride=1)
    return F.max_pool2d(F.pad(x, (0, 0, pad, pad), value=float("-inf")), (k, 1), stride=1)


def _min_filter(x: Tensor, k: int) -> Tensor:
    return -_max_filter(-x, k)
