"""Episodic fine-tuning of the top blocks: the query loss drops on a tiny synthetic text problem, only the top
blocks change (the frozen blocks and their cached states stay bit-identical), and the result saves, loads
and predicts like any text model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from metadl.apps.text.finetune import (
    FinetuneSettings,
    episode_dataset,
    episodic_finetune,
    finetunable_model,
    query_loss,
)
from metadl.apps.text.predict import load_text_model, predict_texts, save_text_model
from metadl.data.text import TextDataset
from metadl.models.text import LowerLayerEncoder

pytestmark = pytest.mark.usefixtures("one_thread")

TOPICS = {
    "bank": ["card", "cash", "bank", "money"],
    "music": ["music", "song", "jazz", "rock"],
    "weather": ["weather", "rain", "snow", "sun"],
    "travel": ["flight", "train", "hotel", "trip"],
    "food": ["pizza", "food", "dinner", "eat"],
}
FILLER = ["the", "a", "my", "please", "now", "today"]


def topic_texts(per_class: int, seed: int) -> TextDataset:
    """Sentences of two filler words around two words of their class's topic."""
    g = torch.Generator().manual_seed(seed)
    texts, labels = [], []
    for label, words in TOPICS.items():
        for _ in range(per_class):
            f = torch.randint(len(FILLER), (2,), generator=g).tolist()
            w = torch.randint(len(words), (2,), generator=g).tolist()
            texts.append(f"{FILLER[f[0]]} {words[w[0]]} {FILLER[f[1]]} {words[w[1]]}")
            labels.append(label)
    return TextDataset.from_names(texts, labels, name="topics")


def build(folder: Path, cache_dir: Path, learner: str) -> tuple[LowerLayerEncoder, object]:
    enc = LowerLayerEncoder(model=str(folder), frozen_layers=2, max_length=8, cache_dir=str(cache_dir))
    # the heads fitted per episode (SVM, ANIL's linear head) see the pooled states unnormalised (norm ~4
    # here), where their margins and inner steps have room; ProtoNet compares directions (cosine)
    kwargs = {"protonet": {"distance": "cosine"}, "svm": {}, "anil": {"inner_steps": 3}}[learner]
    return enc, finetunable_model(
        enc, learner, n_way=5, learner_kwargs=kwargs, normalize=learner == "protonet"
    )


@pytest.mark.parametrize("learner", ["protonet", "svm", "anil"])
def test_finetuning_lowers_query_loss_and_changes_only_the_top(tiny_bert, tmp_path, learner):
    enc, model = build(tiny_bert, tmp_path, learner)
    data = episode_dataset(model, topic_texts(12, seed=0))
    held_out = episode_dataset(model, topic_texts(12, seed=1))
    frozen = {k: v.clone() for k, v in {**enc.bert.state_dict(), **enc.lower.state_dict()}.items()}
    top = {k: v.clone() for k, v in model.learner.state_dict().items() if k.startswith("backbone.")}
    states = enc.encode(topic_texts(2, seed=2).texts)
    shape = {"n_way": 5, "k_shot": 2, "n_query": 4}
    before = query_loss(model, held_out, **shape, episodes=range(100, 110))
    settings = FinetuneSettings(**shape, episodes=60, lr=3e-3, weight_decay=0.0, seed=0)
    history = episodic_finetune(model, data, settings)
    after = query_loss(model, held_out, **shape, episodes=range(100, 110))
    assert len(history) == 60 and after < 0.8 * before, (before, after)
    # the frozen blocks, the embeddings and their cached states are bit-identical ...
    now = {**enc.bert.state_dict(), **enc.lower.state_dict()}
    assert all(now[k].equal(v) for k, v in frozen.items())
    assert enc.encode(topic_texts(2, seed=2).texts).equal(states)
    # ... and every weight of the top block moved
    trained = model.learner.state_dict()
    moved = [k for k, v in top.items() if v.is_floating_point() and not trained[k].equal(v)]
    assert sorted(moved) == sorted(k for k, v in top.items() if v.is_floating_point())
    assert all(k.startswith("backbone.layers.0.") for k in moved)


def test_a_finetuned_model_saves_loads_and_predicts(tiny_bert, tmp_path):
    _, model = build(tiny_bert, tmp_path / "cache", "protonet")
    episodic_finetune(
        model, topic_texts(8, seed=0), FinetuneSettings(n_way=5, k_shot=2, n_query=2, episodes=3, lr=1e-3)
    )
    folder = save_text_model(tmp_path / "model", model)
    loaded = load_text_model(folder)
    support, query = topic_texts(3, seed=4), topic_texts(2, seed=5)
    expected = model.adapt(support.texts, support.label_names()).predict_proba(query.texts)
    got = loaded.adapt(support.texts, support.label_names()).predict_proba(query.texts)
    torch.testing.assert_close(got, expected)
    (tmp_path / "s.csv").write_text(
        "text,label\n"
        + "".join(f"{t},{y}\n" for t, y in zip(support.texts, support.label_names(), strict=True))
    )
    (tmp_path / "q.csv").write_text("text\n" + "".join(f"{t}\n" for t in query.texts))
    rows = predict_texts(folder, tmp_path / "s.csv", tmp_path / "q.csv")
    assert [r["text"] for r in rows] == list(query.texts)
    assert [r["label"] for r in rows] == [support.class_names[i] for i in expected.argmax(1).tolist()]


def test_settings_refuse_bad_values():
    with pytest.raises(ValueError, match="k_shot must be >= 1"):
        FinetuneSettings(k_shot=0)
    with pytest.raises(ValueError, match="lr must be > 0"):
        FinetuneSettings(lr=0.0)
