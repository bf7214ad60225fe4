"""RNN encoders: equal to torch's packed nn.LSTM / nn.GRU after copying weights, and padding-invariant."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from metadl.models import RNNEncoder, create_backbone

DT = torch.float64


def copy_into_torch(enc: RNNEncoder, ref: nn.RNNBase) -> None:
    with torch.no_grad():
        for k, layer in enumerate(enc.layers):
            for d, direction in enumerate(layer):
                sfx = f"_l{k}" + ("_reverse" if d else "")
                getattr(ref, "weight_ih" + sfx).copy_(direction.input_proj.weight)
                getattr(ref, "bias_ih" + sfx).copy_(direction.input_proj.bias)
                getattr(ref, "weight_hh" + sfx).copy_(direction.hidden_proj.weight)
                getattr(ref, "bias_hh" + sfx).copy_(direction.hidden_proj.bias)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_matches_packed_torch_rnn(cell: str, bidirectional: bool) -> None:
    torch.manual_seed(0)
    kw = {"in_features": 3, "hidden_size": 4, "num_layers": 2, "bidirectional": bidirectional}
    last = RNNEncoder(cell=cell, pool="last", **kw).to(DT)
    mean = RNNEncoder(cell=cell, pool="mean", **kw).to(DT)
    mean.load_state_dict(last.state_dict())
    ref = (nn.LSTM if cell == "lstm" else nn.GRU)(
        3, 4, num_layers=2, bidirectional=bidirectional, batch_first=True
    )
    ref = ref.to(DT)
    copy_into_torch(last, ref)
    lengths = torch.tensor([5, 2, 4, 1])
    x = torch.randn(4, 5, 3, dtype=DT)
    mask = torch.arange(5) < lengths[:, None]
    out, state = ref(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    h_n = state[0] if cell == "lstm" else state  # (layers * directions, B, H)
    dirs = 2 if bidirectional else 1
    torch.testing.assert_close(last(x, mask), torch.cat(list(h_n[-dirs:]), dim=-1), rtol=1e-12, atol=1e-12)
    padded, _ = pad_packed_sequence(out, batch_first=True, total_length=5)  # zeros at padding
    torch.testing.assert_close(mean(x, mask), padded.sum(1) / lengths[:, None].to(DT), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pool", ["last", "mean"])
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_token_padding_does_not_change_features(cell: str, pool: str) -> None:
    torch.manual_seed(0)
    enc = RNNEncoder(
        cell=cell, vocab_size=20, embed_dim=4, hidden_size=5, num_layers=2, bidirectional=True, pool=pool
    )
    enc = enc.to(DT)
    tokens = torch.tensor([[3, 7, 2, 9], [5, 1, 0, 0], [8, 0, 0, 0]])
    out = enc(tokens)
    more_padding = torch.cat([tokens, torch.zeros(3, 3, dtype=torch.long)], dim=1)
    torch.testing.assert_close(enc(more_padding), out, rtol=0, atol=0)
    for i, n in enumerate([4, 2, 1]):  # each sequence alone, unpadded
        torch.testing.assert_close(enc(tokens[i : i + 1, :n]), out[i : i + 1], rtol=1e-12, atol=1e-12)


def test_masked_vector_positions_are_ignored() -> None:
    torch.manual_seed(0)
    enc = RNNEncoder(cell="lstm", in_features=3, hidden_size=4, bidirectional=True)
    x = torch.randn(2, 6, 3)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    noisy = x.clone()
    noisy[1, 3:] = 1e3 * torch.randn(3, 3)
    assert torch.equal(enc(x, mask), enc(noisy, mask))
    assert not torch.equal(enc(x), enc(noisy))  # without the mask they are real positions


def test_output_width_and_input_kind() -> None:
    bi = create_backbone("gru", vocab_size=10, embed_dim=3, hidden_size=7, bidirectional=True)
    assert bi.out_features == 14 and bi.input_kind == "tokens" and bi.cell == "gru"
    uni = create_backbone("lstm", in_features=2, hidden_size=7)
    assert uni.out_features == 7 and uni.input_kind == "sequence" and uni.cell == "lstm"


def test_wrong_inputs_and_arguments_fail_clearly() -> None:
    tok = RNNEncoder(vocab_size=10, embed_dim=3, hidden_size=4)
    with pytest.raises(ValueError, match="token ids"):
        tok(torch.randn(2, 5, 3))
    vec = RNNEncoder(in_features=3, hidden_size=4)
    with pytest.raises(ValueError, match=r"\(B, L, 3\)"):
        vec(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        RNNEncoder(vocab_size=10, in_features=3)
    with pytest.raises(ValueError, match="cell"):
        RNNEncoder(cell="rnn", in_features=3)
    with pytest.raises(ValueError, match="padding_idx"):
        RNNEncoder(vocab_size=10, padding_idx=10)
    with pytest.raises(TypeError, match="fixes cell='gru'"):
        create_backbone("gru", in_features=3, cell="lstm")
