"""``resnet50-trunc``: ResNet-50 cut after its third stage, average pooled (1,024-d, CLAM).

Written in plain torch (no torchvision). Weights come from a local file in torchvision
naming (``conv1.weight``, ``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``, ...),
which timm's ResNet-50 shares; the fourth stage and the classifier (``layer4.*``, ``fc.*``)
are unexpected-but-ignored.
"""

from __future__ import annotations

from pathlib import Path

import torch
from slidescope.models.extractors.base import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ExtractorSpec,
    ExtractorWeightsError,
    FeatureExtractor,
    load_mapped_weights,
    load_state_dict_file,
)
from slidescope.models.extractors.registry import register_extractor
from torch import Tensor, nn


class Bottleneck(nn.Module):
    """The ResNet v1.5 bottleneck (stride on the 3x3 convolution), torchvision layout."""

    expansion = 4

    def __init__(self, in_ch: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_ch = width * self.expansion
        self.conv1 = nn.Conv2d(in_ch, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _stage(in_ch: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(in_ch, width, stride)]
    layers += [Bottleneck(width * 4, width) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNetTrunc(FeatureExtractor):
    """ResNet-50 stem + stages 1-3 + global average pooling: (B, 3, 224, 224) -> (B, 1024)."""

    def __init__(self, blocks: tuple[int, int, int] = (3, 4, 6)) -> None:
        super().__init__(
            ExtractorSpec(
                name="resnet50-trunc",
                input_size=224,
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
                feature_dim=1024,
                weights="local file (--weights): ImageNet ResNet-50, torchvision or timm naming",
            )
        )
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(64, 64, blocks[0], 1)
        self.layer2 = _stage(256, 128, blocks[1], 2)
        self.layer3 = _stage(512, 256, blocks[2], 2)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer3(self.layer2(self.layer1(x)))
        return torch.flatten(self.pool(x), 1)


@register_extractor("resnet50-trunc")
def resnet50_trunc(weights: Path | None = None, allow_random: bool = False) -> ResNetTrunc:
    """ResNet-50 truncated after layer3 (CLAM's extractor); needs ``weights``."""
    if weights is None and not allow_random:
        raise ExtractorWeightsError(
            "resnet50-trunc needs ImageNet weights: pass --weights FILE (a ResNet-50 state "
            "dict in torchvision or timm naming, e.g. resnet50-11ad3fa6.pth); random "
            "weights give useless features"
        )
    model = ResNetTrunc()
    if weights is None:
        return model
    state = load_state_dict_file(weights)
    # timm checkpoints sometimes carry a 'model.' style prefix; torchvision ones none.
    state = {k.removeprefix("model.").removeprefix("backbone."): v for k, v in state.items()}
    load_mapped_weights(model, state, weights, ignored_prefixes=("fc.", "layer4.", "head."))
    return model
