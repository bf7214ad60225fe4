"""Datasets carved out by class: the 60/20/20 class split, Omniglot alphabet subsets, embedded intents."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from metadl.config import config_from_dict
from metadl.data import class_subsets, create_dataset
from metadl.data.class_subsets import omniglot_alphabets, sentence_embeddings, split_classes
from metadl.data.omniglot import load_omniglot_characters

SPLITS = ("train", "val", "test")


def test_the_class_split_is_a_seeded_60_20_20_partition() -> None:
    classes = [f"c{i:02d}" for i in range(45)]
    parts = {s: split_classes(classes, s, seed=7) for s in SPLITS}
    assert [len(parts[s]) for s in SPLITS] == [27, 9, 9]
    assert sorted(c for s in SPLITS for c in parts[s]) == classes  # disjoint and complete
    assert parts == {s: split_classes(list(reversed(classes)), s, seed=7) for s in SPLITS}  # order-free
    assert parts["val"] != split_classes(classes, "val", seed=8)
    with pytest.raises(ValueError, match="split='dev'"):
        split_classes(classes, "dev", seed=0)


def test_omniglot_alphabets_hold_only_their_characters_split_by_class(
    shared_data: Path, omniglot_cache_dir: Path
) -> None:
    root, alphabets = shared_data / "omniglot", ("Greek", "Korean")
    parts = {
        s: omniglot_alphabets(root, s, alphabets=alphabets, seed=3, cache_dir=omniglot_cache_dir)
        for s in SPLITS
    }
    names = [n for s in SPLITS for n in parts[s].class_names]
    assert len(names) == len(set(names)) and {n.partition("/")[0] for n in names} == set(alphabets)
    chars = load_omniglot_characters(root, image_size=28, cache_dir=omniglot_cache_dir, progress=False)
    assert len(names) == sum(n.partition("/")[0] in alphabets for n in chars.names)
    val = parts["val"]
    assert val.x_shape == (1, 28, 28) and val.class_counts.tolist() == [20] * val.num_classes
    first = chars.names.index(val.class_names[0])
    assert np.array_equal(val.data[:20, 0].numpy(), chars.images[first])  # drawer k is row k
    with pytest.raises(ValueError, match="Klingon"):
        omniglot_alphabets(root, "val", alphabets=["Klingon"], cache_dir=omniglot_cache_dir)


def _fake_encode(texts: Sequence[str]) -> Tensor:
    """A deterministic 8-d vector per text (its CRC32 spread over bits)."""
    codes = torch.tensor([zlib.crc32(t.encode()) for t in texts], dtype=torch.long)
    return ((codes[:, None] >> torch.arange(8)) & 1).float()


class _FakeEncoder:
    def encode(self, texts: Sequence[str]) -> Tensor:
        return _fake_encode(texts)


@pytest.fixture
def tiny_clinc(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A CLINC150-shaped folder: 2 domains x 5 intents, 2 train + 1 val + 1 test utterances each."""
    domains = {d: [f"{d}_intent{i}" for i in range(5)] for d in ("bank", "travel")}
    data: dict[str, list[list[str]]] = {"train": [], "val": [], "test": []}
    for intents in domains.values():
        for intent in intents:
            for split, n in (("train", 2), ("val", 1), ("test", 1)):
                data[split] += [[f"{split} {j} about {intent}", intent] for j in range(n)]
    data |= {"oos_train": [["what is love", "oos"]], "oos_val": [], "oos_test": []}
    (tmp_path / "data_full.json").write_text(json.dumps(data))
    (tmp_path / "domains.json").write_text(json.dumps(domains))
    monkeypatch.setattr(class_subsets, "text_encoder", lambda name: _FakeEncoder())
    return tmp_path


def test_sentence_embeddings_pool_each_intents_utterances_and_split_intents(tiny_clinc: Path) -> None:
    parts = {s: sentence_embeddings(tiny_clinc, s, domains=["bank"], seed=1) for s in SPLITS}
    names = [n for s in SPLITS for n in parts[s].class_names]
    assert sorted(names) == [f"bank_intent{i}" for i in range(5)]  # the travel domain and oos left out
    train = parts["train"]
    assert train.num_classes == 3 and train.class_counts.tolist() == [4, 4, 4]  # train+val+test pooled
    texts = [
        f"{split} {j} about {intent}"
        for intent in train.class_names
        for split, n in (("train", 2), ("val", 1), ("test", 1))
        for j in range(n)
    ]
    order = torch.argsort(train.labels, stable=True)
    assert torch.equal(train.data[order], _fake_encode(texts))  # each row is its own utterance's vector
    assert set(sentence_embeddings(tiny_clinc, "val", seed=1).class_names).isdisjoint(
        sentence_embeddings(tiny_clinc, "train", seed=1).class_names
    )
    with pytest.raises(ValueError, match="banking77 has no domains"):
        sentence_embeddings(tiny_clinc, "train", corpus="banking77", domains=["bank"])
    with pytest.raises(ValueError, match="corpus='imdb'"):
        sentence_embeddings(tiny_clinc, "train", corpus="imdb")


def test_a_config_names_the_builder_and_rebuilds_the_same_split(tiny_clinc: Path) -> None:
    section = {
        "name": "sentence_embeddings",
        "root": str(tiny_clinc),
        "domains": ["bank", "travel"],
        "seed": 4,
    }
    cfg = config_from_dict({"dataset": section, "backbone": {"name": "mlp"}, "learner": {"name": "protonet"}})
    options = {k: v for k, v in section.items() if k != "name"}
    again = create_dataset(cfg.dataset.name, split="test", **options)
    direct = sentence_embeddings(tiny_clinc, "test", domains=["bank", "travel"], seed=4)
    assert again.class_names == direct.class_names and torch.equal(again.data, direct.data)
