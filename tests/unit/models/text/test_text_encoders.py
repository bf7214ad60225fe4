"""Text encoders: the tokenizer, integer ids reaching the embedding layer, the embedding cache, model folders."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from torch import Tensor

from metadl.models import create_backbone
from metadl.models.text import (
    EmbeddingCache,
    EncoderError,
    FrozenTextEncoder,
    TokenEncoder,
    WordTokenizer,
    create_text_encoder,
    list_text_encoders,
)
from metadl.models.text.sentence import check_model_folder, hash_files


def test_tokenizer_fit_is_deterministic_and_round_trips():
    texts = ["Play some jazz", "play rock", "stop the music!"]
    tok = WordTokenizer.fit(texts, max_vocab=5, max_length=3)
    assert tok.vocab[:3] == ("[PAD]", "[UNK]", "play") and tok.vocab_size == 5
    assert WordTokenizer.from_dict(tok.to_dict()).encode(texts).equal(tok.encode(texts))
    ids = tok.encode(["play play play play", "???", ""])
    assert ids.dtype == torch.long and ids.shape == (3, 3)
    assert ids[1].tolist() == [1, 1, 1]  # unknown marks
    assert ids[2].tolist() == [1, 0, 0]  # no word at all -> one [UNK]
    with pytest.raises(ValueError, match="starts with"):
        WordTokenizer(["a", "b"])


@pytest.mark.parametrize("backbone", ["lstm", "gru", "transformer"])
def test_integer_token_ids_reach_the_embedding_layer(backbone):
    enc = TokenEncoder(texts=["book a flight to paris", "what is my balance"])
    sizes = (
        {"d_model": 8, "num_heads": 2, "num_layers": 1}
        if backbone == "transformer"
        else {"embed_dim": 8, "hidden_size": 8}
    )
    spec = enc.backbone_spec(backbone, **sizes)
    name = spec.pop("name")
    net = create_backbone(name, **spec)
    seen: list[Tensor] = []
    embedding = next(m for m in net.modules() if isinstance(m, torch.nn.Embedding))
    embedding.register_forward_hook(lambda module, args, out: seen.append(args[0]))
    ids = enc.encode(["book a flight", "my balance"])
    out = net(ids)
    assert out.shape == (2, net.out_features)
    assert seen and seen[0].dtype == torch.long and seen[0].equal(ids)


def test_token_encoder_needs_a_sequence_backbone():
    with pytest.raises(EncoderError, match="sequence backbone"):
        TokenEncoder(texts=["a"]).backbone_spec("conv4")
    with pytest.raises(EncoderError, match="exactly one"):
        TokenEncoder()


def test_registry_and_unknown_names():
    assert {"tokens", "sentence_transformer", "wordllama"} <= set(list_text_encoders())
    enc = create_text_encoder("tokens", texts=["hi there"], max_length=4)
    assert create_text_encoder(**enc.config()).encode(["hi"]).equal(enc.encode(["hi"]))
    with pytest.raises(EncoderError, match="unknown text encoder 'bert'"):
        create_text_encoder("bert")


class CountingEncoder(FrozenTextEncoder):
    """A frozen encoder whose output is a function of the text and of a model file's bytes."""

    name = "counting"

    def __init__(self, folder: Path, cache: EmbeddingCache | None) -> None:
        super().__init__(cache=cache, batch_size=2)
        self.folder, self.dim, self.calls = folder, 3, []
        self.fingerprint = hash_files(folder, check_model_folder(folder))
        self.scale = float(len((folder / "model.safetensors").read_bytes()))

    def _embed(self, texts: Sequence[str]) -> Tensor:
        self.calls.append(list(texts))
        return torch.tensor([[len(t), t.count("a"), self.scale] for t in texts], dtype=torch.float32)

    def config(self) -> dict[str, object]:
        return {"name": self.name}


def model_folder(root: Path) -> Path:
    root.mkdir()
    (root / "modules.json").write_text(json.dumps([{"type": "sentence_transformers.models.Transformer"}]))
    (root / "config.json").write_text("{}")
    (root / "tokenizer.json").write_text('{"v": 1}')
    (root / "1_Pooling").mkdir()
    (root / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (root / "model.safetensors").write_bytes(b"weights")
    (root / "README.md").write_text("docs")
    return root


def test_cache_returns_identical_vectors_and_skips_the_model(tmp_path):
    folder = model_folder(tmp_path / "m")
    cache = EmbeddingCache(tmp_path / "cache")
    first = CountingEncoder(folder, cache)
    texts = ["a banana", "bread", "a banana"]
    out = first.encode(texts)
    assert first.calls == [["a banana", "bread"]]  # de-duplicated, batch_size 2
    second = CountingEncoder(folder, cache)  # a new process, same files
    assert second.encode(texts).equal(out) and second.calls == []
    assert out[0].equal(out[2])


@pytest.mark.parametrize(
    "changed", ["model.safetensors", "tokenizer.json", "1_Pooling/config.json", "config.json"]
)
def test_cache_misses_when_any_hashed_file_changes(tmp_path, changed):
    folder = model_folder(tmp_path / "m")
    cache = EmbeddingCache(tmp_path / "cache")
    before = CountingEncoder(folder, cache)
    before.encode(["hello"])
    (folder / changed).write_bytes((folder / changed).read_bytes() + b" ")
    after = CountingEncoder(folder, cache)
    assert after.fingerprint != before.fingerprint
    after.encode(["hello"])
    assert after.calls == [["hello"]]


def test_readme_is_not_hashed(tmp_path):
    folder = model_folder(tmp_path / "m")
    before = hash_files(folder, check_model_folder(folder))
    (folder / "README.md").write_text("new docs")
    assert hash_files(folder, check_model_folder(folder)) == before


@pytest.mark.parametrize(
    ("make_bad", "message"),
    [
        (lambda f: (f / "modeling_custom.py").write_text("import os"), "holds Python code"),
        (lambda f: (f / "config.json").write_text('{"auto_map": {"AutoModel": "x.Y"}}'), "auto_map"),
        (
            lambda f: (f / "modules.json").write_text('[{"type": "custom.Module"}]'),
            "not part of sentence_transformers",
        ),
        (lambda f: (f / "model.safetensors").unlink(), "no model.safetensors"),
        (lambda f: (f / "modules.json").unlink(), "no modules.json"),
    ],
)
def test_model_folders_with_custom_code_or_pickles_are_refused(tmp_path, make_bad, message):
    folder = model_folder(tmp_path / "m")
    make_bad(folder)
    with pytest.raises(EncoderError, match=message):
        check_model_folder(folder)


def test_cache_entries_are_whole_or_missing_and_the_cache_is_bounded(tmp_path):
    cache = EmbeddingCache(tmp_path, max_bytes=4 * 2 * 10)  # room for 10 two-float vectors
    cache.put("m", ["x"], torch.ones(1, 2))
    entry = cache._path(cache.key("m", "x"))
    entry.write_bytes(b"\x00" * 3)  # damaged: wrong size
    assert cache.get("m", ["x"], dim=2) == [None] and not entry.exists()
    texts = [f"t{i}" for i in range(30)]
    for i, t in enumerate(texts):
        cache.put("m", [t], torch.full((1, 2), float(i)))
        os.utime(cache._path(cache.key("m", t)), (1000 + i, 1000 + i))
    cache.evict()
    kept = [v is not None for v in cache.get("m", texts, dim=2)]
    assert sum(kept) <= 10 and kept[-1] and not kept[0]  # least recently used went first
    (tmp_path / "ab").mkdir(exist_ok=True)
    stale = tmp_path / "ab" / ".tmp-killed"
    stale.write_bytes(b"partial")
    os.utime(stale, (0, 0))
    cache.evict()
    assert not stale.exists()


def minilm():
    pytest.importorskip("sentence_transformers")
    try:
        return create_text_encoder("sentence_transformer", cache=False)
    except EncoderError as err:
        pytest.skip(f"all-MiniLM-L6-v2 not available: {err}")


def test_minilm_embeds_unit_vectors_and_similar_sentences_closer():
    enc = minilm()
    v = enc.encode(["what is my account balance", "how much money do I have", "play some jazz"])
    assert v.shape == (3, 384) and torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-4)
    assert v[0] @ v[1] > v[0] @ v[2] + 0.2


def test_wordllama_embeds_unit_vectors():
    pytest.importorskip("wordllama")
    enc = create_text_encoder("wordllama", cache=False)
    v = enc.encode(["check my balance", "play music"])
    assert v.shape == (2, 256) and torch.allclose(v.norm(dim=1), torch.ones(2), atol=1e-4)
