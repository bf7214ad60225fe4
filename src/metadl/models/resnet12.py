"""ResNet-12 as in MetaOptNet (Lee et al. 2019), the standard backbone for mini-ImageNet / tiered-ImageNet.

Four residual blocks of widths (64, 160, 320, 640). Each block: 3 x conv3x3 (no bias) with BatchNorm,
LeakyReLU(0.1) after the first two, a 1x1 conv + BatchNorm shortcut added before the third LeakyReLU,
then max-pool 2. With ``drop_rate > 0`` blocks 1-2 apply dropout and blocks 3-4 DropBlock
(Ghiasi et al. 2018), as in MetaOptNet's code, but at a constant rate: MetaOptNet ramps the DropBlock
keep probability linearly over training with a step counter, a schedule left to the trainer here.
BatchNorm is :class:`metadl.models.layers.BatchNorm`, exact under ``torch.func.vmap``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from metadl.models.base import Backbone
from metadl.models.layers import BatchNorm


def blocks_from_seeds(seeds: Tensor, size: int) -> Tensor:
    """Grow each 1 in ``seeds`` ``(..., H - size + 1, W - size + 1)`` into a ``size`` x ``size`` square of 1s
    whose top-left corner it is: ``(..., H, W)`` (MetaOptNet's ``_compute_block_mask``, as a max-pool).

    Example:
        >>> seeds = torch.zeros(1, 1, 3, 3); seeds[0, 0, 1, 2] = 1
        >>> blocks_from_seeds(seeds, 2)[0, 0]
        tensor([[0., 0., 0., 0.],
                [0., 0., 1., 1.],
                [0., 0., 1., 1.],
                [0., 0., 0., 0.]])
    """
    return F.max_pool2d(F.pad(seeds, (size - 1,) * 4), kernel_size=size, stride=1)


def drop_block(x: Tensor, *, drop_rate: float, block_size: int) -> Tensor:
    """Zero random ``block_size`` x ``block_size`` squares of ``x`` ``(B, C, H, W)`` and rescale (training only).

    The seed rate is MetaOptNet's ``gamma``, chosen so that about ``drop_rate`` of the units would be
    dropped if blocks did not overlap; the block is clipped to the feature map. The kept units are
    scaled by ``numel / kept`` so the mean activation is preserved. Under ``vmap`` call it with
    ``randomness="different"``.

    Example:
        >>> y = drop_block(torch.ones(2, 3, 8, 8), drop_rate=0.3, block_size=3)
        >>> y.shape, bool((y == 0).any())
        (torch.Size([2, 3, 8, 8]), True)
    """
    h, w = x.shape[-2:]
    size = min(block_size, h, w)
    gamma = drop_rate / size**2 * (h * w) / ((h - size + 1) * (w - size + 1))
    seeds = (torch.rand_like(x[..., : h - size + 1, : w - size + 1]) < gamma).to(x.dtype)
    keep = 1.0 - blocks_from_seeds(seeds, size)
    return x * keep * (keep.numel() / keep.sum().clamp(min=1.0))


class ResidualBlock(nn.Module):
    """One ResNet-12 block ``(B, in, H, W) -> (B, out, H // 2, W // 2)``."""

    def __init__(
        self, in_channels: int, out_channels: int, *, drop_rate: float, block_size: int | None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = BatchNorm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = BatchNorm(out_channels)
        self.conv3 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn3 = BatchNorm(out_channels)
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), BatchNorm(out_channels)
        )
        self.act = nn.LeakyReLU(0.1)
        self.pool = nn.MaxPool2d(2)
        self.drop_rate, self.block_size = drop_rate, block_size  # block_size None: plain dropout

    def forward(self, x: Tensor) -> Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = self.pool(self.act(out + self.shortcut(x)))
        if self.training and self.drop_rate > 0:
            if self.block_size is None:
                out = F.dropout(out, p=self.drop_rate)
            else:
                out = drop_block(out, drop_rate=self.drop_rate, block_size=self.block_size)
        return out


class ResNet12(Backbone):
    """ResNet-12 -> ``(B, channels[-1])`` after global average pooling (or flattened, ``avg_pool=False``).

    Args:
        in_channels: image channels (3 for mini-ImageNet).
        channels: widths of the 4 blocks; MetaOptNet's (64, 160, 320, 640) has 12.42M parameters.
        drop_rate: dropout (blocks 1-2) / DropBlock (blocks 3-4) rate in [0, 1), 0 = off (MetaOptNet:
            0.1). Under ``vmap`` in training mode a rate > 0 needs ``randomness="different"``.
        dropblock_size: DropBlock square side (MetaOptNet: 5 for 84x84, 2 for 32x32 inputs).
        avg_pool: global average pool to ``channels[-1]`` features (default); False flattens the final
            map (MetaOptNet's mini-ImageNet setting: 640 x 5 x 5 = 16000 features for 84x84).
        image_size: input side, used for ``out_features`` when ``avg_pool=False``; at least 16.

    Example:
        >>> net = ResNet12(in_channels=3, channels=(8, 16, 24, 32))
        >>> net(torch.randn(2, 3, 32, 32)).shape
        torch.Size([2, 32])
    """

    input_kind = "image"

    def __init__(
        self,
        *,
        in_channels: int = 3,
        channels: Sequence[int] = (64, 160, 320, 640),
        drop_rate: float = 0.0,
        dropblock_size: int = 5,
        avg_pool: bool = True,
        image_size: int = 84,
    ) -> None:
        super().__init__()
        channels = tuple(channels)
        if in_channels < 1 or len(channels) != 4 or min(channels) < 1:
            raise ValueError(
                f"ResNet12 needs in_channels >= 1 and 4 positive block widths, got in_channels={in_channels}, "
                f"channels={channels}"
            )
        if not 0.0 <= drop_rate < 1.0:
            raise ValueError(f"ResNet12: drop_rate={drop_rate} must be in [0, 1)")
        if dropblock_size < 1:
            raise ValueError(f"ResNet12: dropblock_size={dropblock_size} must be >= 1")
        if image_size < 16:
            raise ValueError(
                f"ResNet12: image_size={image_size} is too small for 4 max-pools; use image_size >= 16"
            )
        widths = (in_channels, *channels)
        self.blocks = nn.Sequential(
            *(
                ResidualBlock(
                    widths[i],
                    widths[i + 1],
                    drop_rate=drop_rate,
                    block_size=dropblock_size if i >= 2 else None,
                )
                for i in range(4)
            )
        )
        self.avg_pool = avg_pool
        side = image_size // 16
        self.out_features = channels[-1] if avg_pool else channels[-1] * side * side
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu")

    def forward(self, x: Tensor) -> Tensor:
        x = self.blocks(x)  # (B, channels[-1], H / 16, W / 16)
        return x.mean(dim=(-2, -1)) if self.avg_pool else x.flatten(1)
