"""Episodic fine-tuning of the top of a pretrained sentence encoder (MiniLM) with any meta-learner.

How it fits 2 cores: the lower ``frozen_layers`` blocks never change, so their token states are computed
once per sentence and cached (:class:`~metadl.models.text.layers.LowerLayerEncoder`); the episodes run
and train only the top blocks and the pooling (the ``bert_top`` backbone, initialised with the
pretrained blocks) under the learner's loss: ProtoNet's prototype loss, MetaOptNet-SVM's or
MAML/ANIL's query loss after adapting the head. Sentences are cut at ``max_length`` tokens, the 95th
percentile of the training texts' lengths by default, so most sentences are whole and padding is short.

The result is an ordinary :class:`~metadl.apps.text.model.TextModel` (encoder config + learner), so
``adapt``/``predict``, :func:`~metadl.apps.text.predict.save_text_model` and ``metadl predict`` use
it unchanged; the saved model holds the trained top blocks and the encoder's name, layer and length.

Example (needs ``metadl[text]`` and the all-MiniLM-L6-v2 files, so not run here)::

    encoder = LowerLayerEncoder(frozen_layers=4, max_length=24)
    model = finetunable_model(encoder, "protonet", learner_kwargs={"distance": "cosine"})
    history = episodic_finetune(model, clinc_train, FinetuneSettings(episodes=300))
    model.adapt(support_texts, support_labels).predict(["how do I top up my card"])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from metadl.apps.text.model import TextModel
from metadl.data.base import FewShotDataset
from metadl.data.text import TextDataset
from metadl.models.text.layers import LowerLayerEncoder
from metadl.tasks.file_source import TaskFileSource
from metadl.tasks.samplers import EpisodeSampler
from metadl.tasks.source import TaskKind
from metadl.tasks.task import Task, TaskBatch
from metadl.training.meta import meta_train


@dataclass(frozen=True)
class FinetuneSettings:
    """Episodes of ``n_way`` classes with ``k_shot`` support and ``n_query`` query sentences each;
    ``episodes`` meta-batches of ``meta_batch`` tasks; AdamW with ``lr`` and ``weight_decay``; global
    gradient-norm clip ``grad_clip``; ``seed`` seeds the episode sampler (and, in a run folder, every
    global random state); a run folder's ``last.ckpt`` is written every ``checkpoint_every`` episodes."""

    n_way: int = 10
    k_shot: int = 5
    n_query: int = 5
    episodes: int = 200
    meta_batch: int = 1
    lr: float = 2e-5
    weight_decay: float = 0.01
    grad_clip: float | None = 1.0
    seed: int = 0
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        counts = {
            "n_way": self.n_way,
            "k_shot": self.k_shot,
            "n_query": self.n_query,
            "episodes": self.episodes,
            "meta_batch": self.meta_batch,
        }
        for key, value in counts.items():
            if value < 1:
                raise ValueError(f"FinetuneSettings: {key} must be >= 1, got {value}")
        if not self.lr > 0:
            raise ValueError(f"FinetuneSettings: lr must be > 0, got {self.lr}")
        if self.checkpoint_every < 0:
            raise ValueError(f"FinetuneSettings: checkpoint_every must be >= 0, got {self.checkpoint_every}")


def finetunable_model(
    encoder: LowerLayerEncoder,
    learner: str = "protonet",
    *,
    n_way: int = 10,
    learner_kwargs: dict[str, Any] | None = None,
    **backbone_kwargs: Any,
) -> TextModel:
    """``learner`` on a ``bert_top`` backbone holding ``encoder``'s pretrained top blocks (``backbone_kwargs``:
    e.g. ``dropout``)."""
    return TextModel.build(
        encoder,
        learner,
        backbone="bert_top",
        n_way=n_way,
        learner_kwargs=learner_kwargs,
        backbone_state=encoder.top_state(),
        **backbone_kwargs,
    )


def episode_dataset(model: TextModel, data: TextDataset) -> FewShotDataset:
    """``data``'s sentences encoded once (cached lower-layer states) as a dataset the episode samplers read."""
    return FewShotDataset(model.encoder.encode(data.texts), data.labels, data.class_names, name=data.name)


class EncodedTasks:
    """Text tasks of a task-file source (each its own label space) with their sentences encoded on demand:
    a sentence is computed once, then read from the encoder's cache, so only sampled sentences cost.
    A task source itself: its state is the file source's (the run object checkpoints it)."""

    kind: TaskKind = "classification"

    def __init__(self, model: TextModel, source: TaskFileSource) -> None:
        self.model, self.source = model, source

    @property
    def batchable(self) -> bool:
        return self.source.batchable

    def sample(self) -> Task:
        task = self.source.sample()
        encode = self.model.encoder.encode
        return Task(encode(task.support_texts()), task.support_y, encode(task.query_texts()), task.query_y)

    def sample_batch(self, n_tasks: int) -> TaskBatch:
        return TaskBatch.stack([self.sample() for _ in range(n_tasks)])

    def state_dict(self) -> dict[str, Any]:
        return self.source.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.source.load_state_dict(state)


def episode_source(
    model: TextModel, data: TextDataset | FewShotDataset | TaskFileSource, settings: FinetuneSettings
) -> EpisodeSampler | EncodedTasks:
    """The episodes of ``data`` for ``model``: ``n_way``-way episodes of a labelled dataset (its sentences
    encoded once), or the tasks of a task-file source as it is configured (encoded per task)."""
    if isinstance(data, TaskFileSource):
        return EncodedTasks(model, data)
    dataset = episode_dataset(model, data) if isinstance(data, TextDataset) else data
    return EpisodeSampler(
        dataset, n_way=settings.n_way, k_shot=settings.k_shot, n_query=settings.n_query, seed=settings.seed
    )


def episodic_finetune(
    model: TextModel,
    data: TextDataset | FewShotDataset | TaskFileSource,
    settings: FinetuneSettings = FinetuneSettings(),
    *,
    progress: bool = False,
) -> list[dict[str, float]]:
    """Meta-train ``model``'s learner (its trainable parameters: the top blocks, and any head) on episodes of
    ``data`` (sentences with labels, or a task-file source whose tasks keep their own labels, sampled as the
    source is configured); returns one row per meta-batch (``iteration``, ``loss``, ``accuracy``)."""
    sampler = episode_source(model, data, settings)
    trainable = [p for p in model.learner.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    return meta_train(
        model.learner,
        sampler,
        optimizer,
        iterations=settings.episodes,
        meta_batch=settings.meta_batch,
        grad_clip=settings.grad_clip,
        progress=progress,
    )


def query_loss(
    model: TextModel,
    dataset: FewShotDataset,
    *,
    n_way: int,
    k_shot: int,
    n_query: int,
    episodes: Sequence[int],
) -> float:
    """Mean query loss of ``model``'s learner (eval mode, no gradient) on the seeded episodes ``episodes``."""
    model.learner.eval()
    losses = []
    with torch.no_grad():
        for seed in episodes:
            sampler = EpisodeSampler(dataset, n_way=n_way, k_shot=k_shot, n_query=n_query, seed=seed)
            losses.append(model.learner(sampler.sample_batch(1)).loss.item())
    return sum(losses) / len(losses)
