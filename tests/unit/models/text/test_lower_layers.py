"""The lower-layer encoder: cached token states equal a fresh forward pass (and ``transformers``' own), the
cache key covers the layer, and encoder + pretrained top reproduce the model's sentence embeddings."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metadl.models import create_backbone
from metadl.models.bert_top import BertTop
from metadl.models.text import EncoderError, LowerLayerEncoder, create_text_encoder

TEXTS = ["play some jazz now", "my card please", "rain today", "book a hotel room for the trip"]


def lower(folder: Path, cache_dir: Path, **kwargs: object) -> LowerLayerEncoder:
    options = {"frozen_layers": 2, "max_length": 10, **kwargs}
    return LowerLayerEncoder(model=str(folder), cache_dir=str(cache_dir), **options)  # type: ignore[arg-type]


def top_of(enc: LowerLayerEncoder) -> BertTop:
    spec = enc.backbone_spec(dropout=0.0)
    net = create_backbone(spec.pop("name"), **spec)
    net.load_state_dict(enc.top_state())
    assert isinstance(net, BertTop)
    return net.eval()


def test_cached_token_states_equal_a_fresh_forward_pass(tiny_bert, tmp_path):
    enc = lower(tiny_bert, tmp_path)
    first = enc.encode(TEXTS)
    assert first.shape == (4, 10 * 17) and enc.cache is not None and enc.cache.misses == 4
    again = enc.encode(TEXTS[::-1])
    assert enc.cache.hits == 4 and again.equal(first.flip(0))
    fresh = lower(tiny_bert, tmp_path, cache=False).encode(TEXTS)
    assert fresh.equal(first)
    # ... and equal transformers' hidden states after block 2 on the real tokens
    tok = enc.tokenizer(TEXTS, padding="max_length", max_length=10, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = enc.bert(**tok, output_hidden_states=True).hidden_states[2]
    states = first.reshape(4, 10, 17)
    mask = tok["attention_mask"].bool()
    assert states[..., 16].equal(mask.float())
    torch.testing.assert_close(states[..., :16][mask], hidden[mask], atol=1e-5, rtol=1e-4)


def test_cache_key_covers_layer_and_length(tiny_bert, tmp_path):
    two = lower(tiny_bert, tmp_path).encode(TEXTS[:2])
    one = lower(tiny_bert, tmp_path, frozen_layers=1)
    other = one.encode(TEXTS[:2])
    assert one.cache is not None and one.cache.hits == 0 and not other.equal(two)
    shorter = lower(tiny_bert, tmp_path, max_length=6)
    assert (
        shorter.encode(TEXTS[:2]).shape == (2, 6 * 17)
        and shorter.cache is not None
        and shorter.cache.hits == 0
    )


def test_encoder_and_pretrained_top_reproduce_the_sentence_embeddings(tiny_bert, tmp_path):
    from sentence_transformers import SentenceTransformer

    expected = SentenceTransformer(str(tiny_bert), device="cpu").encode(TEXTS, convert_to_tensor=True)
    for frozen in (0, 1, 3):
        enc = lower(tiny_bert, tmp_path, frozen_layers=frozen)
        with torch.no_grad():
            got = top_of(enc)(enc.encode(TEXTS))
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)


def test_length_quantile_config_and_errors(tiny_bert, tmp_path):
    enc = lower(tiny_bert, tmp_path)
    assert enc.length_quantile(["rain", "play some jazz"], q=1.0) == 5  # [CLS] play some jazz [SEP]
    config = enc.config()
    rebuilt = create_text_encoder(config.pop("name"), **config)
    assert isinstance(rebuilt, LowerLayerEncoder) and rebuilt.fingerprint == enc.fingerprint
    with pytest.raises(EncoderError, match="frozen_layers=4"):
        lower(tiny_bert, tmp_path, frozen_layers=4)
    with pytest.raises(EncoderError, match="max_length=2"):
        lower(tiny_bert, tmp_path, max_length=2)
    with pytest.raises(EncoderError, match="bert_top"):
        enc.backbone_spec("mlp")


def test_minilm_lower_layers_and_top_reproduce_minilm():
    pytest.importorskip("sentence_transformers")
    try:
        enc = LowerLayerEncoder(frozen_layers=4, max_length=16, cache=False)
    except EncoderError as err:
        pytest.skip(f"all-MiniLM-L6-v2 not available: {err}")
    expected = enc.base.encode(TEXTS)
    with torch.no_grad():
        got = top_of(enc)(enc.encode(TEXTS))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
