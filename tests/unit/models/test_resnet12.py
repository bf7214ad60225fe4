"""ResNet-12: output sizes, MetaOptNet's parameter count, dropout / DropBlock behaviour."""

from __future__ import annotations

import pytest
import torch

from metadl.models import ResNet12, create_backbone
from metadl.models.resnet12 import blocks_from_seeds, drop_block

SMALL = (4, 6, 8, 10)


@pytest.mark.parametrize(("side", "final"), [(84, 5), (32, 2)])
def test_output_size_for_84_and_32_inputs(side: int, final: int) -> None:
    x = torch.randn(2, 3, side, side)
    net = ResNet12(channels=SMALL).eval()
    with torch.no_grad():
        assert net.blocks(x).shape == (2, SMALL[-1], final, final)
        assert net(x).shape == (2, SMALL[-1]) and net.out_features == SMALL[-1]
        flat = ResNet12(channels=SMALL, avg_pool=False, image_size=side).eval()
        assert flat.out_features == SMALL[-1] * final * final
        assert flat(x).shape == (2, flat.out_features)


def test_metaoptnet_sizes() -> None:
    # MetaOptNet's mini-ImageNet head sees 640 x 5 x 5 = 16000 features without average pooling.
    assert create_backbone("resnet12", avg_pool=False, image_size=84).out_features == 16000
    assert create_backbone("resnet12").out_features == 640


def test_parameter_count_matches_metaoptnet() -> None:
    net = ResNet12(channels=(64, 160, 320, 640))
    n = sum(p.numel() for p in net.parameters())
    # Closed form: per block 3x3 convs (c_in*c + 2*c*c)*9, a 1x1 shortcut c_in*c, 4 batch norms x 2c.
    widths = (3, 64, 160, 320, 640)
    expected = sum(9 * (a * b + 2 * b * b) + a * b + 8 * b for a, b in zip(widths, widths[1:], strict=False))
    assert n == expected == 12_424_320
    assert abs(n - 12.4e6) / 12.4e6 < 0.005  # MetaOptNet reports 12.4M


def test_blocks_from_seeds_grow_squares_from_their_top_left_corner() -> None:
    seeds = torch.zeros(1, 1, 4, 4)
    seeds[0, 0, 0, 0] = seeds[0, 0, 3, 1] = 1
    mask = blocks_from_seeds(seeds, 3)[0, 0]  # (6, 6)
    expected = torch.zeros(6, 6)
    expected[0:3, 0:3] = 1
    expected[3:6, 1:4] = 1
    assert torch.equal(mask, expected)


def test_drop_block_drops_about_the_rate_and_keeps_the_mean() -> None:
    torch.manual_seed(0)
    x = torch.ones(32, 16, 10, 10)
    y = drop_block(x, drop_rate=0.1, block_size=5)
    dropped = (y == 0).double().mean().item()
    assert 0.06 < dropped < 0.12  # gamma ignores overlaps, so a little under the rate
    torch.testing.assert_close(y.mean(), torch.tensor(1.0))
    # Every dropped region is made of whole blocks: a 5x5 square of zeros around each seed.
    assert set(y.unique().tolist()) == {0.0, y.max().item()}


def test_dropout_and_dropblock_only_in_training() -> None:
    torch.manual_seed(0)
    net = ResNet12(channels=SMALL, drop_rate=0.3, dropblock_size=2)
    x = torch.randn(3, 3, 32, 32)
    net.train()
    assert not torch.equal(net(x), net(x))
    net.eval()
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_drop_rate_under_vmap_needs_a_randomness_flag() -> None:
    net = ResNet12(channels=SMALL, drop_rate=0.2).train()
    x = torch.randn(2, 3, 3, 16, 16)  # (tasks, batch, C, H, W)
    with pytest.raises(RuntimeError, match="randomness"):
        torch.func.vmap(net)(x)
    out = torch.func.vmap(net, randomness="different")(torch.stack([x[0], x[0]]))
    assert out.shape == (2, 3, SMALL[-1]) and not torch.equal(out[0], out[1])


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"channels": (4, 6, 8, 0)}, "channels"),
        ({"drop_rate": 1.0}, "drop_rate"),
        ({"image_size": 8}, "image_size"),
    ],
)
def test_bad_arguments(kwargs: dict, key: str) -> None:
    with pytest.raises(ValueError, match=key):
        ResNet12(**kwargs)
