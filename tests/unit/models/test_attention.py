"""Self-attention: equal to torch's attention / pre-norm encoder after copying weights; a set encoder."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from metadl.models import SelfAttentionEncoder, create_backbone
from metadl.models.attention import AttentionStack, MultiHeadSelfAttention, masked_mean

DT = torch.float64


def lengths_mask(lengths: list[int], length: int) -> torch.Tensor:
    return torch.arange(length) < torch.tensor(lengths)[:, None]


def test_attention_matches_torch_multihead_attention_with_key_padding() -> None:
    torch.manual_seed(0)
    mine = MultiHeadSelfAttention(8, 2).to(DT)
    ref = nn.MultiheadAttention(8, 2, batch_first=True).to(DT)
    with torch.no_grad():
        ref.in_proj_weight.copy_(mine.qkv.weight)
        ref.in_proj_bias.copy_(mine.qkv.bias)
        ref.out_proj.weight.copy_(mine.out.weight)
        ref.out_proj.bias.copy_(mine.out.bias)
    x = torch.randn(3, 5, 8, dtype=DT)
    mask = lengths_mask([5, 3, 1], 5)
    expected, _ = ref(x, x, x, key_padding_mask=~mask, need_weights=False)
    torch.testing.assert_close(mine(x, mask), expected, rtol=1e-12, atol=1e-12)


def test_stack_matches_torch_pre_norm_transformer_encoder() -> None:
    torch.manual_seed(0)
    d, heads, ff, n_layers = 8, 2, 12, 2
    mine = AttentionStack(
        d, num_layers=n_layers, num_heads=heads, ff_dim=ff, dropout=0.0, pool="mean", owner="t"
    )
    mine = mine.to(DT)
    layer = nn.TransformerEncoderLayer(
        d, heads, ff, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
    )
    ref = nn.TransformerEncoder(layer, n_layers, norm=nn.LayerNorm(d), enable_nested_tensor=False).to(DT)
    with torch.no_grad():
        for block, torch_block in zip(mine.blocks, ref.layers, strict=True):
            torch_block.self_attn.in_proj_weight.copy_(block.attn.qkv.weight)
            torch_block.self_attn.in_proj_bias.copy_(block.attn.qkv.bias)
            torch_block.self_attn.out_proj.load_state_dict(block.attn.out.state_dict())
            torch_block.linear1.load_state_dict(block.ff[0].state_dict())
            torch_block.linear2.load_state_dict(block.ff[3].state_dict())
            torch_block.norm1.load_state_dict(block.norm1.state_dict())
            torch_block.norm2.load_state_dict(block.norm2.state_dict())
        ref.norm.load_state_dict(mine.norm.state_dict())
    x = torch.randn(3, 6, d, dtype=DT)
    mask = lengths_mask([6, 4, 2], 6)
    expected = masked_mean(ref(x, src_key_padding_mask=~mask), mask)
    torch.testing.assert_close(mine(x, mask), expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_set_encoder_ignores_order_and_padding(pool: str) -> None:
    torch.manual_seed(0)
    enc = SelfAttentionEncoder(in_features=3, d_model=8, num_heads=2, num_layers=2, pool=pool).to(DT)
    x = torch.randn(2, 5, 3, dtype=DT)
    mask = lengths_mask([5, 3], 5)
    out = enc(x, mask)
    perm = torch.tensor([3, 0, 4, 2, 1])
    torch.testing.assert_close(enc(x[:, perm], mask[:, perm]), out, rtol=1e-12, atol=1e-12)
    noisy = x.clone()
    noisy[1, 3:] = 100 * torch.randn(2, 3, dtype=DT)  # values at padded positions
    torch.testing.assert_close(enc(noisy, mask), out, rtol=0, atol=0)
    torch.testing.assert_close(enc(x[1:, :3]), out[1:], rtol=1e-12, atol=1e-12)  # the set alone, unpadded


def test_token_input_uses_padding_id() -> None:
    torch.manual_seed(0)
    enc = create_backbone("attention", vocab_size=10, d_model=8, num_heads=2)
    assert enc.input_kind == "tokens" and enc.out_features == 8
    tokens = torch.tensor([[4, 5, 6, 0, 0]])
    torch.testing.assert_close(enc(tokens), enc(tokens[:, :3]))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_features": 3, "d_model": 8, "num_heads": 3}, "num_heads"),
        ({"in_features": 3, "pool": "max"}, "pool"),
        ({"in_features": 3, "dropout": 1.5}, "dropout"),
        ({}, "exactly one of vocab_size"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SelfAttentionEncoder(**kwargs)


def test_wrong_input_shape_fails_clearly() -> None:
    with pytest.raises(ValueError, match=r"\(B, L, 3\)"):
        SelfAttentionEncoder(in_features=3, d_model=8, num_heads=2)(torch.randn(4, 3))
