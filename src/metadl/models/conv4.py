"""Conv-4, the few-shot workhorse (Vinyals et al. 2016; Finn et al. 2017; Snell et al. 2017)."""

from __future__ import annotations

from torch import Tensor, nn

from metadl.models.base import Backbone
from metadl.models.layers import BatchNorm


def conv_block(in_channels: int, out_channels: int, *, pool: bool = True) -> nn.Sequential:
    """conv3x3 (padding 1) -> BatchNorm -> ReLU -> max-pool 2."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        BatchNorm(out_channels),
        nn.ReLU(),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class Conv4(Backbone):
    """4 x [conv3x3 ``hidden``, BatchNorm, ReLU, max-pool 2], flattened.

    On 1x28x28 Omniglot with hidden=64 the map is 64x1x1, so ``out_features`` = 64; on 3x84x84
    mini-ImageNet it is 64x5x5 = 1600. ``image_size`` fixes ``out_features`` at construction.

    Example:
        >>> Conv4(in_channels=1, image_size=28)(torch.randn(2, 1, 28, 28)).shape
        torch.Size([2, 64])
    """

    input_kind = "image"

    def __init__(self, *, in_channels: int = 1, hidden: int = 64, image_size: int = 28) -> None:
        super().__init__()
        if in_channels < 1 or hidden < 1:
            raise ValueError(f"Conv4 needs in_channels >= 1 and hidden >= 1, got {in_channels}, {hidden}")
        side = image_size
        for _ in range(4):
            side //= 2
        if side < 1:
            raise ValueError(f"image_size={image_size} is too small for 4 max-pools; use image_size >= 16")
        self.encoder = nn.Sequential(
            conv_block(in_channels, hidden),
            conv_block(hidden, hidden),
            conv_block(hidden, hidden),
            conv_block(hidden, hidden),
        )
        self.out_features = hidden * side * side

    def forward(self, x: Tensor) -> Tensor:
        return self.encoder(x).flatten(1)
